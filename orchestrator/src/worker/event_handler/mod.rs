//! Job handlers: what each job type does when it is created, processed and verified.

pub mod jobs;
