"""The service around the engine (service standard ch. 2, 4, 7): tickets for failures,
their priorities, deadlines and clocks. Pure rules here; the store is in the catalog."""
