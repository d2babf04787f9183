# hookguard: one static-enough binary on distroless (glibc, no shell), non-root.
# Not built on the development machines (no container engine there): `make image`.
FROM rust:1.85-bookworm AS build
WORKDIR /src
# The whole tree (see .dockerignore): Cargo.toml names test and bench targets by path.
COPY . .
# Profile-guided (scripts/pgo.sh: trained on the captured reviews in tests/fixtures; it
# installs Debian's llvm-19, rustc 1.85's LLVM, for llvm-profdata, and wrk). ~20 % less CPU per
# admission request than the plain release build (docs/performance.md).
RUN scripts/pgo.sh > /tmp/built \
 && cp "$(sed -n 's/^hookguard=//p' /tmp/built)" /hookguard

# cc: glibc + libgcc (ring and the Rust std need them); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /hookguard /usr/local/bin/hookguard
USER 65532:65532
EXPOSE 8443 8080 8081
ENTRYPOINT ["/usr/local/bin/hookguard"]
CMD ["--help"]
