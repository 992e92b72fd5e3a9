"""The main process's HTTP side: pages, the JSON API and, later, the load endpoints."""
