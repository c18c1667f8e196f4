# syntax=docker/dockerfile:1
# Build stage: compile TypeScript with the dev dependencies.
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund
COPY abi ./abi
COPY cli ./cli
COPY schema ./schema
COPY server ./server
COPY clients ./clients
COPY test ./test
RUN npx tsc -p tsconfig.json

# Run stage: production dependencies only, non-root. Run it with a read-only root filesystem
# and no capabilities; only the two volumes are written (a test mirrors exactly that):
#   docker run --read-only --cap-drop=ALL --security-opt=no-new-privileges \
#     -v sevd-run:/run/sevd -v sevd-state:/var/lib/sevd -p 127.0.0.1:4445:4445 sevd
# and set a WebSocket token in the config before publishing the port beyond this host.
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /opt/sevd
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist/abi ./dist/abi
COPY --from=build /src/dist/cli ./dist/cli
COPY --from=build /src/dist/server ./dist/server
COPY --from=build /src/dist/schema ./dist/schema
COPY config ./config
COPY web ./web
RUN mkdir -p /run/sevd /var/lib/sevd && chown node:node /run/sevd /var/lib/sevd
USER node
VOLUME ["/run/sevd", "/var/lib/sevd"]
EXPOSE 4445
HEALTHCHECK --interval=30s --timeout=3s CMD node -e "fetch('http://127.0.0.1:4445/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "dist/server/main.js"]
CMD ["--config", "config/container.json"]
