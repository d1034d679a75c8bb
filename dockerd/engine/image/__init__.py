"""Images: the store view on pycontainerd (service.py), list, import, prune, and the backend the /images routes serve from."""
