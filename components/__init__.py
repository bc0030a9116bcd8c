"""Building blocks of the ArgusAI deployment: settings, names and one ComponentResource per concern."""
