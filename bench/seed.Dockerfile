# The seed's image, as its pipeline built it by hand (the baseline of bench/bench.py):
# copy the wheel in and let pip resolve, download and install every dependency inside the
# image, under qemu for arm/v7, built with --no-cache every time.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG PIP_INDEX_URL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pkg /pkg
RUN pip install --break-system-packages /pkg/*.whl && rm -rf /pkg
