# The outpost image: the one `outpost` binary, every component (broker,
# detector, posts). Used by the Helm chart (charts/outpost, docs/KUBERNETES.md).
#
#   docker build -t outpost:0.1.0 .
#
# The detector's BPF programs are compiled against a vmlinux.h dumped from the
# build host's kernel BTF (/sys/kernel/btf/vmlinux, visible in a build
# container); they are CO-RE, so the image runs on other kernels with BTF too.
# A host without BTF: pass one with --build-arg VMLINUX_BTF=/path inside the
# build context.

# ---- build: the -dev packages of scripts/setup.sh that the build needs (no
# test tools: tests are not built here).
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config clang bpftool \
      libcjson-dev libmicrohttpd-dev libgnutls28-dev libcurl4-openssl-dev librdkafka-dev \
      libbpf-dev libsqlite3-dev libyaml-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ARG VMLINUX_BTF=/sys/kernel/btf/vmlinux
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release \
      -DOUTPOST_TESTS=OFF -DOUTPOST_BENCH=OFF -DOUTPOST_VMLINUX_BTF="$VMLINUX_BTF" \
 && cmake --build /build -j"$(nproc)" --target outpost \
 && install -m 0755 -s /build/cmd/outpost /usr/local/bin/outpost \
 && /usr/local/bin/outpost version

# ---- runtime: the shared libraries the binary links, nothing else.
FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libgnutls30 libcurl4 libcjson1 librdkafka1 libbpf1 libsqlite3-0 libyaml-0-2 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/outpost /usr/local/bin/outpost
# A user of its own, by number, so that Kubernetes can check runAsNonRoot
# against the image. The detector's pod runs it as root with CAP_BPF,
# CAP_PERFMON and CAP_SYS_RESOURCE instead (the chart's DaemonSet).
RUN groupadd --system --gid 65532 outpost \
 && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/outpost \
      --no-create-home --shell /usr/sbin/nologin outpost \
 && install -d -o 65532 -g 65532 -m 0750 /var/lib/outpost
USER 65532:65532
WORKDIR /var/lib/outpost
ENTRYPOINT ["outpost"]
CMD ["--help"]
