# GENERATED from image/spec.toml by `scripts/image --dockerfile > Dockerfile`; a test fails when they differ.
# kubedr: one image for the exporter, the applier and the snapshot job.
#   docker build -t ghcr.io/kubedr/kubedr:0.1.0 .
# Without Docker, a registry or a daemon: scripts/image (mmdebstrap + buildah) builds the same image.
# Everything it needs is installed at build time; nothing is downloaded when it runs.

FROM debian:bookworm-slim AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml ./
COPY README.md ./
COPY base ./base
COPY commands ./commands
COPY exporter ./exporter
COPY applier ./applier
COPY snapshot ./snapshot
COPY emulator ./emulator
COPY repo-template ./repo-template
COPY manifests ./manifests
RUN python3 -m venv /opt/kubedr && /opt/kubedr/bin/pip install --no-cache-dir --disable-pip-version-check . && /opt/kubedr/bin/pip uninstall -q -y pip setuptools

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv git openssh-client age etcd-client ca-certificates tini && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 -K UID_MAX=65532 -K GID_MAX=65532 kubedr && useradd --uid 65532 --gid 65532 -K UID_MAX=65532 -K GID_MAX=65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin kubedr && install -d -o 65532 -g 65532 /var/lib/kubedr
COPY --from=build /opt/kubedr /opt/kubedr
ENV PATH=/opt/kubedr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
WORKDIR /var/lib/kubedr
VOLUME ["/tmp", "/var/lib/kubedr"]
EXPOSE 9090
ENTRYPOINT ["tini", "-s", "--", "kubedr"]
CMD ["--help"]
