"""The appliance's long-running side: the scheduler, its child runs, alerts, metrics and status."""
