"""TaskFlow decorators: ``@task.openrouter`` (registered in ``get_provider_info``'s ``task-decorators``)."""
