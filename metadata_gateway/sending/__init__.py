"""Sending: the asyncio owner of the budget schedulers, their dispatchers, and the
aiobotocore PutMetadata client with every IVS error classified."""
