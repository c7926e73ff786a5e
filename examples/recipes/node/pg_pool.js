// node-postgres (`pg`) pool with a password function: every new connection gets a token
// from the broker (cached there, so this is cheap). Node 18+ (global fetch).
// Environment: RDS_TOKEN_BROKER_URL, and the caller's JWT in RDS_TOKEN_BROKER_JWT or the
// Kubernetes service-account token file.
const fs = require("node:fs");
const { Pool } = require("pg");

const K8S_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

function callerJwt() {
  return (process.env.RDS_TOKEN_BROKER_JWT || fs.readFileSync(K8S_TOKEN, "utf8")).trim();
}

async function fetchToken(target, dbUser) {
  const res = await fetch(`${process.env.RDS_TOKEN_BROKER_URL.replace(/\/$/, "")}/v1/tokens`, {
    method: "POST",
    headers: { Authorization: `Bearer ${callerJwt()}`, "Content-Type": "application/json" },
    body: JSON.stringify(dbUser ? { target, db_user: dbUser } : { target }),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`rds-token-broker: ${res.status} ${body.detail}`);
  return body;
}

// The first token says where the database is; later ones only renew the password.
async function brokerPool(target, database) {
  const first = await fetchToken(target);
  return new Pool({
    host: first.host,
    port: first.port,
    user: first.db_user,
    database,
    ssl: { rejectUnauthorized: true }, // add the RDS CA with NODE_EXTRA_CA_CERTS
    password: async () => (await fetchToken(target, first.db_user)).token,
  });
}

module.exports = { brokerPool, fetchToken };

if (require.main === module) {
  brokerPool("orders-db", "orders").then(async (pool) => {
    const { rows } = await pool.query("select current_user");
    console.log(rows[0].current_user);
    await pool.end();
  });
}
