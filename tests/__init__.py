"""The project's tests: unit tests here (under Pulumi's mocks), deployments in tests/integration."""
