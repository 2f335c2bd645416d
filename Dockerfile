# MedView web app. Multi-stage: dependencies are installed before the code is copied, so code
# changes rebuild in seconds; the runtime image runs as a non-root user.
# BASE_IMAGE: any Python 3.11 image with `python` on PATH (docker/local/build-images.sh makes a stand-in from
# Debian packages for machines without registry access; docker-compose.local.yml uses it).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS build
# ONNXRUNTIME=onnxruntime-gpu builds the CUDA image for GPU workers (docker-compose.gpu.yml).
ARG ONNXRUNTIME=onnxruntime
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Extra CA certificates of the build host (docker/host-ca/*.crt, put there only for the build by
# docker/local/host-ca.sh; git-ignored) are trusted by pip next to its own bundle. Build stage only.
COPY docker/host-ca/ /tmp/host-ca/
RUN python -m venv /opt/venv \
 && cat "$(/opt/venv/bin/python -c 'import pip._vendor.certifi as c; print(c.where())')" > /tmp/pip-ca.pem \
 && for crt in /tmp/host-ca/*.crt; do if [ -f "$crt" ]; then cat "$crt" >> /tmp/pip-ca.pem; fi; done
ENV PIP_CERT=/tmp/pip-ca.pem
# Only pyproject.toml: an edit of the README or the code must not reinstall the dependencies.
COPY pyproject.toml ./
RUN mkdir app && echo '__version__ = "0"' > app/__init__.py && : > README.md \
 && /opt/venv/bin/pip install "setuptools>=68" wheel \
 && /opt/venv/bin/pip install . && /opt/venv/bin/pip uninstall -y medview \
 && if [ "$ONNXRUNTIME" != onnxruntime ]; then \
      /opt/venv/bin/pip uninstall -y onnxruntime && /opt/venv/bin/pip install "$ONNXRUNTIME"; fi
# The code, installed in place (editable, offline: the build tools are in the venv) at the path it has in
# the runtime stage; the build host's certificates are not part of it (nor tests, bench, docs: .dockerignore).
COPY . /srv/medview
RUN rm -f /srv/medview/docker/host-ca/*.crt \
 && /opt/venv/bin/pip install --no-deps --no-build-isolation -e /srv/medview \
 && chmod +x /srv/medview/docker/prestart.sh

FROM ${BASE_IMAGE}
# The default database is SQLite in the data dir, so a plain `docker run` works; compose sets its own URL.
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    MEDVIEW_DATA_DIR=/var/lib/medview MEDVIEW_DATA_ROOTS=/data:/var/lib/medview \
    MEDVIEW_DATABASE_URL=sqlite:////var/lib/medview/medview.db
RUN useradd --create-home --uid 10001 medview && mkdir -p /var/lib/medview /data \
 && chown medview /var/lib/medview
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/medview
COPY --from=build --chown=medview /srv/medview .
USER medview
EXPOSE 8000
# A long start period costs nothing (the first passing check makes it healthy at once) and lets a busy host run
# the prestart's migrations and the workers' start-up without the app being marked unhealthy meanwhile.
HEALTHCHECK --interval=5s --timeout=5s --start-period=120s --retries=5 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4)" || exit 1
# Datasets are mounted read-only under /data; MedView writes only under /var/lib/medview.
ENTRYPOINT ["docker/prestart.sh"]
CMD ["medview", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
