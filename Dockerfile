# syntax=docker/dockerfile:1
# One image for the broker, the link agent and the operator: `meridian broker|link-agent|operator ...`
# (the operator renders pods that run this image with `broker` and `link-agent` arguments).
#   docker build -t meridian:dev .

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# patch-package applies these in npm's postinstall.
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY broker/src ./broker/src
COPY operator/src ./operator/src
RUN npx tsc -p tsconfig.json \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# The node image's unprivileged user (uid/gid 1000), which the rendered pods' securityContext expects.
USER 1000:1000
ENTRYPOINT ["node", "/app/dist/broker/src/cli/main.js"]
CMD ["--help"]
