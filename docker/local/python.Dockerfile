# Stand-in for python:3.11-slim made from Debian packages (bookworm's Python is 3.11): `python`, venv and pip
# on PATH, CA certificates, no compilers. Built by docker/local/build-images.sh on the local base image.
ARG BASE=medview-local/debian:bookworm
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv python3-pip ca-certificates \
 && ln -s /usr/bin/python3 /usr/local/bin/python \
 && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8
CMD ["python3"]
