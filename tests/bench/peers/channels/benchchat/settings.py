"""Settings of the chat fan-out peer: Channels only, the Redis channel layer as shipped."""

import os

SECRET_KEY = "opsdeck-bench-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels"]
ROOT_URLCONF = "benchchat.urls"
ASGI_APPLICATION = "benchchat.asgi.application"
USE_TZ = True
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [os.environ["BENCH_REDIS_URL"]]},
    }
}
