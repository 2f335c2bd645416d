# MedView web app. Multi-stage: dependencies are installed before the code is copied, so code
# changes rebuild in seconds; the runtime image runs as a non-root user.
FROM python:3.11-slim AS build
# ONNXRUNTIME=onnxruntime-gpu builds the CUDA image for GPU workers (docker-compose.gpu.yml).
ARG ONNXRUNTIME=onnxruntime
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
RUN mkdir app && echo '__version__ = "0"' > app/__init__.py \
 && python -m venv /opt/venv && /opt/venv/bin/pip install . && /opt/venv/bin/pip uninstall -y medview \
 && if [ "$ONNXRUNTIME" != onnxruntime ]; then \
      /opt/venv/bin/pip uninstall -y onnxruntime && /opt/venv/bin/pip install "$ONNXRUNTIME"; fi

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    MEDVIEW_DATA_DIR=/var/lib/medview MEDVIEW_DATA_ROOTS=/data:/var/lib/medview
RUN useradd --create-home --uid 10001 medview && mkdir -p /var/lib/medview /data \
 && chown medview /var/lib/medview
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/medview
COPY --chown=medview . .
RUN pip install --no-deps -e . && chmod +x docker/prestart.sh
USER medview
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=2)" || exit 1
# Datasets are mounted read-only under /data; MedView writes only under /var/lib/medview.
ENTRYPOINT ["docker/prestart.sh"]
CMD ["medview", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
