"""The AWS side: boto3 clients, the state-backend bootstrap and the local moto sandbox."""
