//! The PostgreSQL server the tests may use (`HOTLINE_TEST_POSTGRES`), and a schema of a
//! test's own in it.

/// The PostgreSQL URL the tests use, if any (None: skip; fails if it is required).
pub fn postgres_url() -> Option<String> {
    match std::env::var("HOTLINE_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("HOTLINE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "HOTLINE_REQUIRE_POSTGRES=1 but HOTLINE_TEST_POSTGRES (a postgres:// URL) is not set"
            );
            eprintln!("skipped: set HOTLINE_TEST_POSTGRES to a postgres:// URL to run this test");
            None
        }
    }
}

/// A schema of the test's own in the shared database, dropped at the end.
pub struct Schema {
    base: String,
    name: String,
}

impl Schema {
    pub fn new(base: String, name: &str) -> Schema {
        let name = format!("t_{name}_{}", std::process::id());
        let mut admin = ::postgres::Client::connect(&base, ::postgres::NoTls).expect("connect");
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name};"
            ))
            .expect("a schema of the test's own");
        Schema { base, name }
    }

    /// The database's URL with this schema as the search path.
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut c) = ::postgres::Client::connect(&self.base, ::postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}
