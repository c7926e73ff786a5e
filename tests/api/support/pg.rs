//! A throwaway database on the machine's PostgreSQL (127.0.0.1:5432, trust auth), dropped
//! when the test ends.

use sqlx::Connection;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub struct TempDb {
    pub name: String,
}

impl TempDb {
    pub async fn create() -> Self {
        let name = format!("rtb_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(ADMIN_URL)
            .await
            .expect("PostgreSQL must be running on 127.0.0.1:5432 (see CONTRIBUTING.md, Test)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        Self { name }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// Runs one statement as the administrator, on the test database or `test`.
    pub async fn admin(&self, sql: &str, on_test_db: bool) {
        let url = if on_test_db {
            self.url()
        } else {
            ADMIN_URL.to_owned()
        };
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop from a fresh thread and runtime: Drop may run inside a test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(ADMIN_URL).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}
