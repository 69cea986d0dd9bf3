# kubedr: one image for the exporter, the applier and the snapshot job.
#   docker build -t ghcr.io/kubedr/kubedr:0.1.0 .
# Everything it needs is installed at build time; nothing is downloaded when it runs.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kubedr ./kubedr
COPY repo-template ./repo-template
COPY emulator ./emulator
COPY exporter ./exporter
COPY applier ./applier
COPY snapshot ./snapshot
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# git for the repo, age for interoperable sealing, ssh for SSH remotes,
# etcd-client for `etcdctl snapshot save` and `etcdutl snapshot restore` in the snapshot job.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      git age openssh-client ca-certificates etcd-client \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-compile /wheels/*.whl && rm -rf /wheels \
 && groupadd --gid 65532 kubedr && useradd --uid 65532 --gid 65532 --home-dir /tmp --no-create-home kubedr \
 && mkdir -p /var/lib/kubedr && chown 65532:65532 /var/lib/kubedr
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
USER 65532:65532
WORKDIR /var/lib/kubedr
EXPOSE 9090
ENTRYPOINT ["kubedr"]
CMD ["--help"]
