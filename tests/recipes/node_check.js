// Runs the node-postgres recipe against a fake database server and prints, as JSON, the
// pool's settings, its password function's answer (as a SHA-256), and how a query ended.
const crypto = require("node:crypto");
const recipe = require(process.argv[2]);

(async () => {
  const pool = await recipe.brokerPool("orders-db", "orders");
  const password = await pool.options.password();
  let error = null;
  try {
    await pool.query("select 1");
  } catch (e) {
    error = String(e.message);
  }
  await pool.end();
  console.log(JSON.stringify({
    token_sha256: crypto.createHash("sha256").update(password).digest("hex"),
    host: pool.options.host,
    port: pool.options.port,
    user: pool.options.user,
    error,
  }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
