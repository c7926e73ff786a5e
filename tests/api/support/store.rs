//! An audit store for a test to point the broker at and to read or tamper with behind
//! its back: a SQLite file in a temp dir, or a throwaway database on the tests' private
//! PostgreSQL.

use sqlx::Row as _;

use super::pg::TempDb;

pub enum Store {
    Sqlite(tempfile::TempDir),
    Postgres(TempDb),
}

impl Store {
    pub fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().unwrap())
    }

    pub async fn postgres() -> Self {
        Self::Postgres(TempDb::create().await)
    }

    /// The `[audit] url` of the store.
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(d) => format!("sqlite://{}/audit.db", d.path().display()),
            Self::Postgres(db) => db.url(),
        }
    }

    /// Runs one statement as the store's owner.
    pub async fn exec(&self, sql: &str) {
        match self {
            Self::Sqlite(_) => {
                let pool = sqlx::SqlitePool::connect(&self.url()).await.unwrap();
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
            Self::Postgres(db) => db.admin(sql, true).await,
        }
    }

    /// Every row of `sql`, the named `columns` each read as text (`None` for NULL).
    pub async fn rows(&self, sql: &str, columns: &[&str]) -> Vec<Vec<Option<String>>> {
        macro_rules! text_rows {
            ($pool:ty) => {{
                let pool = <$pool>::connect(&self.url()).await.unwrap();
                let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
                rows.iter()
                    .map(|r| columns.iter().map(|c| r.try_get(*c).unwrap()).collect())
                    .collect()
            }};
        }
        match self {
            Self::Sqlite(_) => text_rows!(sqlx::SqlitePool),
            Self::Postgres(_) => text_rows!(sqlx::PgPool),
        }
    }

    /// The first row of `sql`, every column read as text (none may be NULL).
    pub async fn row(&self, sql: &str, columns: &[&str]) -> Vec<String> {
        let rows = self.rows(sql, columns).await;
        let first = rows.into_iter().next().expect("no row");
        first.into_iter().map(Option::unwrap).collect()
    }
}
