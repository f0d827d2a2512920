# expeed-sync: one image for every role (run, the CLI commands, and the demo simulator).
# The build stage compiles the TypeScript (tsc is a dev dependency) into dist/; the final image holds
# the production dependencies, the compiled code, and the sources, so that bin/expeed-sync.js runs
# the compiled code (less CPU and ~30 MB less memory than tsx) and tsx remains the fallback.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY . .
RUN npm run build

FROM node:20-slim

ENV NODE_ENV=production
# In a container the webhook listens on every interface; publishing the port decides who reaches it.
ENV WEBHOOK_HOST=0.0.0.0
WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lockfile changes.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error && npm cache clean --force

# Sources (what .dockerignore leaves: bin/, src/, workers/ and the other runtime files), then their
# build. COPY keeps the files' modification times, so the build stamp matches these sources.
COPY . .
COPY --from=build /app/dist ./dist
# the image must run the compiled code: fail here rather than fall back to tsx at every start
RUN node bin/build.js --check

# No root at run time. tsx (the fallback) keeps its transform cache in the OS temp folder, which `node` may write.
USER node

# The webhook: pushes from the platform, /healthz, /readyz and the queue dashboard.
EXPOSE 8780

# Healthy when /readyz answers 200 (Redis and InfluxDB reachable). Containers running another
# command (the simulator, one-off CLI commands) override or ignore it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.WEBHOOK_PORT||8780)+'/readyz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"]

# `docker run IMAGE` runs the service; `docker run IMAGE status` (or any command) runs the CLI.
ENTRYPOINT ["node", "bin/expeed-sync.js"]
CMD ["run"]
