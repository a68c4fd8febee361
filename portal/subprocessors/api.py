"""(being written): the client's sub-processor view in the API."""
