"""Smart charging (1.6 Smart Charging profile; 2.0.1 / 2.1 block K): sharing a site's limit."""
