//! Signed tree heads (checkpoints) in the audit database: table `audit_tree_heads`
//! (migration 5), and the leaf hashes the Merkle tree of a chain is built from.

use sqlx::Row;

use super::merkle::{self, Hash};
use super::store::{AuditStore, StoreError, err};

/// One stored checkpoint of a chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TreeHead {
    /// The chain (broker instance) it covers.
    pub chain_id: String,
    /// Leaves (events `seq` 1..=tree_size) in the tree.
    pub tree_size: u64,
    /// Base64 of the 32-byte Merkle root.
    pub root_hash: String,
    /// The whole signed note.
    pub note: String,
    /// When it was made, RFC 3339 UTC.
    pub created_at: String,
}

/// Most checkpoints [`AuditStore::tree_heads`] returns when asked for every one.
pub const MAX_TREE_HEADS: i64 = 1000;

const HEAD_COLUMNS: &str = "chain_id, tree_size, root_hash, note, created_at";

macro_rules! read_head {
    ($r:expr) => {{
        let r = $r;
        let size: i64 = r.try_get("tree_size").map_err(err)?;
        TreeHead {
            chain_id: r.try_get("chain_id").map_err(err)?,
            tree_size: u64::try_from(size).unwrap_or_default(),
            root_hash: r.try_get("root_hash").map_err(err)?,
            note: r.try_get("note").map_err(err)?,
            created_at: r.try_get("created_at").map_err(err)?,
        }
    }};
}

/// A tree size as the databases store it (BIGINT).
fn db_size(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

impl AuditStore {
    /// Stores a checkpoint. Storing the same (chain, size) again is a no-op when it is the
    /// same root, so a retried publish is harmless.
    pub async fn insert_tree_head(&self, head: &TreeHead) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO audit_tree_heads ({HEAD_COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (chain_id, tree_size) DO NOTHING"
        );
        on_pool!(self, p => {
            sqlx::query(&sql)
                .bind(&head.chain_id)
                .bind(db_size(head.tree_size))
                .bind(&head.root_hash)
                .bind(&head.note)
                .bind(&head.created_at)
                .execute(p)
                .await
                .map(|_| ())
                .map_err(err)
        }, noop => Ok(()))
    }

    /// Checkpoints, newest (largest tree) first within each chain, chains in name order:
    /// every checkpoint of `chain_id`, or of every chain when `None` (at most
    /// [`MAX_TREE_HEADS`] in either case, the newest kept).
    pub async fn tree_heads(&self, chain_id: Option<&str>) -> Result<Vec<TreeHead>, StoreError> {
        let sql = match chain_id {
            Some(_) => format!(
                "SELECT {HEAD_COLUMNS} FROM audit_tree_heads WHERE chain_id = $1 \
                 ORDER BY tree_size DESC LIMIT $2"
            ),
            None => format!(
                "SELECT {HEAD_COLUMNS} FROM (SELECT {HEAD_COLUMNS} FROM audit_tree_heads \
                 ORDER BY created_at DESC, tree_size DESC LIMIT $1) AS newest \
                 ORDER BY chain_id, tree_size DESC"
            ),
        };
        on_pool!(self, p => {
            let q = match chain_id {
                Some(c) => sqlx::query(&sql).bind(c).bind(MAX_TREE_HEADS),
                None => sqlx::query(&sql).bind(MAX_TREE_HEADS),
            };
            let mut out = Vec::new();
            for r in q.fetch_all(p).await.map_err(err)? {
                out.push(read_head!(&r));
            }
            Ok(out)
        }, noop => Ok(Vec::new()))
    }

    /// The newest checkpoint of `chain_id`, if any.
    pub async fn latest_tree_head(&self, chain_id: &str) -> Result<Option<TreeHead>, StoreError> {
        let sql = format!(
            "SELECT {HEAD_COLUMNS} FROM audit_tree_heads WHERE chain_id = $1 \
             ORDER BY tree_size DESC LIMIT 1"
        );
        on_pool!(self, p => {
            match sqlx::query(&sql).bind(chain_id).fetch_optional(p).await.map_err(err)? {
                Some(r) => Ok(Some(read_head!(&r))),
                None => Ok(None),
            }
        }, noop => Ok(None))
    }

    /// The latest checkpoint of `chain_id` that covers the event at `seq` (tree size >=
    /// seq), if any.
    pub async fn tree_head_covering(
        &self,
        chain_id: &str,
        seq: u64,
    ) -> Result<Option<TreeHead>, StoreError> {
        let sql = format!(
            "SELECT {HEAD_COLUMNS} FROM audit_tree_heads WHERE chain_id = $1 AND tree_size >= $2 \
             ORDER BY tree_size DESC LIMIT 1"
        );
        on_pool!(self, p => {
            match sqlx::query(&sql).bind(chain_id).bind(db_size(seq)).fetch_optional(p).await.map_err(err)? {
                Some(r) => Ok(Some(read_head!(&r))),
                None => Ok(None),
            }
        }, noop => Ok(None))
    }

    /// The checkpoint of `chain_id` whose tree has `size` leaves, if one is stored.
    pub async fn tree_head_of_size(
        &self,
        chain_id: &str,
        size: u64,
    ) -> Result<Option<TreeHead>, StoreError> {
        let sql = format!(
            "SELECT {HEAD_COLUMNS} FROM audit_tree_heads WHERE chain_id = $1 AND tree_size = $2"
        );
        on_pool!(self, p => {
            match sqlx::query(&sql).bind(chain_id).bind(db_size(size)).fetch_optional(p).await.map_err(err)? {
                Some(r) => Ok(Some(read_head!(&r))),
                None => Ok(None),
            }
        }, noop => Ok(None))
    }

    /// The Merkle root of leaves `[start, end)` of `chain_id` (events `seq` start+1..=end),
    /// streamed a page at a time; `None` when the store lacks one of them.
    pub async fn range_root(
        &self,
        chain_id: &str,
        (start, end): merkle::LeafRange,
    ) -> Result<Option<Hash>, StoreError> {
        let mut tree = merkle::TreeBuilder::new();
        self.for_each_leaf(chain_id, start, end, |_, leaf| tree.push(leaf))
            .await?;
        Ok((tree.size() == end - start).then(|| tree.root()))
    }

    /// The leaf hashes of events `seq` 1..=`upto` of `chain_id`, in order (leaf index =
    /// seq - 1). Reads the stored events: events removed by retention pruning are missing,
    /// and then the list is shorter than `upto`. Fails if a stored hash is not 64 hex
    /// digits.
    pub async fn leaf_hashes(&self, chain_id: &str, upto: u64) -> Result<Vec<Hash>, StoreError> {
        let mut out = Vec::new();
        self.for_each_leaf(chain_id, 0, upto, |_, leaf| out.push(leaf))
            .await?;
        Ok(out)
    }

    /// Calls `each(seq, leaf hash)` for the events of `chain_id` with `after < seq <=
    /// upto`, in order, reading a page at a time (bounded memory).
    pub async fn for_each_leaf(
        &self,
        chain_id: &str,
        after: u64,
        upto: u64,
        mut each: impl FnMut(u64, Hash),
    ) -> Result<(), StoreError> {
        const PAGE: i64 = 4096;
        // Events retention pruned keep their hashes in audit_pruned_hashes: a checkpointed
        // prefix stays provable after its events are gone.
        let sql = "SELECT seq, hash FROM (SELECT seq, hash FROM audit_events WHERE chain_id = $1 \
                   UNION ALL SELECT seq, hash FROM audit_pruned_hashes WHERE chain_id = $1) AS l \
                   WHERE seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4";
        let mut from = db_size(after);
        let upto = db_size(upto);
        loop {
            let rows: Vec<(i64, String)> = on_pool!(self, p => {
                let mut page = Vec::new();
                for r in sqlx::query(sql).bind(chain_id).bind(from).bind(upto).bind(PAGE).fetch_all(p).await.map_err(err)? {
                    page.push((r.try_get("seq").map_err(err)?, r.try_get("hash").map_err(err)?));
                }
                page
            }, noop => Vec::new());
            let full = rows.len() as i64 == PAGE;
            for (seq, hash) in rows {
                let event_hash = event_hash_bytes(&hash).ok_or(StoreError::BadHash)?;
                each(
                    u64::try_from(seq).unwrap_or_default(),
                    merkle::leaf_hash(&event_hash),
                );
                from = seq;
            }
            if !full {
                return Ok(());
            }
        }
    }
}

/// The 32 raw bytes of an event's `hash` field (64 hex digits).
pub fn event_hash_bytes(hash: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hash, &mut out).ok()?;
    Some(out)
}
