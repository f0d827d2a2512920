# expeed-sync: one image for every role (run, the CLI commands, and the demo simulator).
# The TypeScript sources run through tsx, a runtime dependency, so there is no build step and the
# image holds exactly what `npx expeed-sync` runs on a developer machine.
FROM node:20-slim

ENV NODE_ENV=production
# In a container the webhook listens on every interface; publishing the port decides who reaches it.
ENV WEBHOOK_HOST=0.0.0.0
WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lockfile changes.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error && npm cache clean --force

# Sources (what .dockerignore leaves: bin/, src/, and the other runtime files).
COPY . .

# No root at run time. tsx keeps its transform cache in the OS temp folder, which `node` may write.
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
