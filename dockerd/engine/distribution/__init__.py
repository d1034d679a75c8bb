"""Pull, push and login against registries (moby's distribution/): the registry v2 client, the progress stream, the backend of the distribution routes."""
