# Dockerfile — gpux in a container: Debian 12 (bookworm), gpux built from this tree, Dawn (the
# WebGPU implementation, from npm) and Mesa's Vulkan drivers (lavapipe, from bookworm-backports).
# On a GPU node the NVIDIA driver comes from the host through the NVIDIA container toolkit
# (`docker run --gpus all`, or the Kubernetes device plugin); without a GPU, gpux runs on the CPU.
#   docker build -t gpux .
#   docker run -p 8080:8080 gpux serve --host 0.0.0.0 --port 8080 registry.example.com/team/ocr:1.0
# The entrypoint is `gpux`; `serve` of a registry's image pulls it into $GPUX_HOME at start.
FROM debian:bookworm-slim AS build
RUN echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config ca-certificates nodejs npm \
      libyaml-dev libcjson-dev libmicrohttpd-dev libcurl4-openssl-dev libssl-dev libpng-dev \
      libjpeg-dev libopenblas-dev libcmocka-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Dawn: the same npm package scripts/install-deps.sh takes (bun-webgpu-linux-x64's C API wrapper)
RUN rm -rf deps && mkdir -p deps/npm deps/lib \
 && cd deps/npm && echo '{"name":"gpux-deps","private":true}' > package.json \
 && npm install --ignore-scripts --no-audit --no-fund --loglevel=error bun-webgpu-linux-x64@0.1.7 \
 && cp node_modules/bun-webgpu-linux-x64/libwebgpu_wrapper.so ../lib/libwebgpu_dawn.so
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/opt/gpux \
 && cmake --build build -j"$(nproc)" --target gpux gpuxshared \
 && cmake --install build

FROM debian:bookworm-slim
RUN echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libyaml-0-2 libcjson1 libmicrohttpd12 libcurl4 libssl3 libpng16-16 \
      libjpeg62-turbo libopenblas0 \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -t bookworm-backports \
      mesa-vulkan-drivers libvulkan1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/gpux /opt/gpux
ENV PATH=/opt/gpux/bin:$PATH \
    GPUX_HOME=/var/lib/gpux \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics
RUN mkdir -p /var/lib/gpux && gpux version
EXPOSE 8080
HEALTHCHECK CMD ["gpux", "ps", "-q"]
ENTRYPOINT ["gpux"]
CMD ["--help"]
