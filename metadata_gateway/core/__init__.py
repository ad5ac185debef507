"""The pure core: cue parsing and validation, channel queues and coalescing, rate limits,
the budget scheduler and admission. Neither aiohttp nor aiobotocore; time is a number."""
