//! Which tools a member's assistant has, by the member's role: the one table that decides both
//! what a turn offers the model and what the worker will run. A call to a tool not offered (a
//! model that invents one, or one told about it in a message) is answered with an error result
//! and never run.
//!
//! | tool                                               | adult | teen | child |
//! |----------------------------------------------------|-------|------|-------|
//! | remember, recall, forget                           | yes   | yes  | yes   |
//! | set_reminder, list_reminders, cancel_reminder      | yes   | yes  | yes   |
//! | search_household_knowledge                         | yes   | yes  | yes   |
//! | list_files, read_file                              | yes   | yes  | yes   |
//! | write_file, delete_file                            | yes   | yes  | no    |
//!
//! Teens keep every tool: each one works only on their own directory (or reads what the whole
//! household may read), and the teen guidance in the prompt shapes what they are used for. A
//! child's assistant keeps memory, reminders and the household's knowledge, and may read its
//! files but not write or delete them: nothing a child says turns into a stored document.

use hearth_proto::control::Role;
use hearth_proto::llm::ToolSpec;

use crate::tools::ToolError;
use crate::{files, knowledge, tools};

/// One row of the preset: the tool, then whether an adult, a teen and a child may use it.
const PRESETS: &[(&str, bool, bool, bool)] = &[
    ("remember", true, true, true),
    ("recall", true, true, true),
    ("forget", true, true, true),
    ("set_reminder", true, true, true),
    ("list_reminders", true, true, true),
    ("cancel_reminder", true, true, true),
    (knowledge::TOOL, true, true, true),
    ("list_files", true, true, true),
    ("read_file", true, true, true),
    ("write_file", true, true, false),
    ("delete_file", true, true, false),
];

/// Whether a member of `role` has the tool `name`. Unknown tools: no one.
pub fn allows(role: Role, name: &str) -> bool {
    PRESETS.iter().find(|row| row.0 == name).is_some_and(|&(_, adult, teen, child)| match role {
        Role::Adult => adult,
        Role::Teen => teen,
        Role::Child => child,
    })
}

/// Every tool this worker runs, in the order offered.
fn all_specs() -> Vec<ToolSpec> {
    let mut specs = tools::specs();
    specs.push(knowledge::spec());
    specs.extend(files::specs());
    specs
}

/// The tools a turn of a member of `role` offers the model.
pub fn specs(role: Role) -> Vec<ToolSpec> {
    all_specs().into_iter().filter(|s| allows(role, &s.name)).collect()
}

/// The result of a call to a tool the turn did not offer.
pub fn refused(name: &str) -> ToolError {
    if PRESETS.iter().any(|row| row.0 == name) {
        ToolError::NotAllowed(name.to_owned())
    } else {
        ToolError::Unknown(name.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(role: Role) -> Vec<String> {
        specs(role).into_iter().map(|s| s.name).collect()
    }

    #[test]
    fn the_table_and_the_tools_match() {
        let all: Vec<String> = all_specs().into_iter().map(|s| s.name).collect();
        let rows: Vec<&str> = PRESETS.iter().map(|r| r.0).collect();
        assert_eq!(all, rows, "every tool has one row, in the order offered");
        assert_eq!(names(Role::Adult), all);
        assert_eq!(names(Role::Teen), all);
    }

    #[test]
    fn a_child_reads_but_does_not_write_files() {
        let child = names(Role::Child);
        for tool in ["remember", "set_reminder", knowledge::TOOL, "list_files", "read_file"] {
            assert!(child.iter().any(|n| n == tool), "{tool}");
        }
        assert!(!child.iter().any(|n| n == "write_file" || n == "delete_file"), "{child:?}");
        assert!(!allows(Role::Child, "write_file") && allows(Role::Teen, "write_file"));
        assert!(!allows(Role::Adult, "launch_rockets"));
        assert_eq!(refused("write_file"), ToolError::NotAllowed("write_file".into()));
        assert_eq!(refused("launch_rockets"), ToolError::Unknown("launch_rockets".into()));
    }
}
