"""The AWS side: AWS clients (botocore), the state-backend bootstrap and the local moto sandbox."""
