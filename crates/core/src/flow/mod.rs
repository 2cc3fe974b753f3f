//! The call-flow language: the YAML model, loading and checking, and the interpreter.
//! Pure: the machine takes events and the time and returns actions; loading reads files.

pub mod check; // checks of one flow and its compilation
pub mod diagnostic; // problems with file:line:col, printed like a compiler's
pub mod duration; // `5s`, `500ms`, `1h30m`
pub mod flowset; // the compiled flows the interpreter runs
pub mod load; // reading flow files; checks across flows
pub mod machine; // the interpreter: events in, actions out
pub mod model; // serde types of the flow files
pub mod say; // numbers, dates, times, money and digits as recorded fragments
pub mod schedule; // opening hours and holidays, evaluated at an instant
pub mod story; // a call's story as data
pub mod template; // Jinja templates and conditions (minijinja)
