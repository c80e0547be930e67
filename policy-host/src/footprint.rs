//! What one instance of a component takes from wasmtime's pooling
//! allocator: a component instance is several core instances (the
//! guest's module and wit-component's shim and fixup modules), each with
//! the memories and tables it defines. The pool is sized from these
//! numbers so that `max_concurrent_calls` calls really fit at once.

use wasmparser::{Instance, Parser, Payload};

/// Pool slots one instantiation of a component uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Footprint {
    /// Core module instances.
    pub(crate) core_instances: u32,
    /// Linear memories defined by those modules.
    pub(crate) memories: u32,
    /// Tables defined by those modules.
    pub(crate) tables: u32,
}

/// What the parser is inside of: a component (with its module index
/// space: the memories and tables each module defines) or a module.
enum Frame {
    Component(Vec<(u32, u32)>),
    Module,
}

/// Counts what `component` instantiates: every `instantiate` of a core
/// module in its core instance sections, with that module's defined
/// memories and tables (a module's imported memories are another's).
/// `None` when the binary cannot be read (the caller then refuses to size
/// a pool by guesswork).
pub(crate) fn of(component: &[u8]) -> Option<Footprint> {
    let mut footprint = Footprint {
        core_instances: 0,
        memories: 0,
        tables: 0,
    };
    let mut stack = vec![Frame::Component(Vec::new())];
    // The module being read: the last of its component's modules.
    fn current(stack: &mut [Frame]) -> Option<&mut (u32, u32)> {
        match stack.iter_mut().rev().nth(1)? {
            Frame::Component(modules) => modules.last_mut(),
            Frame::Module => None,
        }
    }
    let mut payloads = Parser::new(0).parse_all(component);
    // The first payload is the outer component's header.
    payloads.next()?.ok()?;
    for payload in payloads {
        match payload.ok()? {
            Payload::ModuleSection { .. } => {
                match stack.last_mut()? {
                    Frame::Component(modules) => modules.push((0, 0)),
                    Frame::Module => return None,
                }
                stack.push(Frame::Module);
            }
            Payload::ComponentSection { .. } => stack.push(Frame::Component(Vec::new())),
            Payload::MemorySection(s) => current(&mut stack)?.0 += s.count(),
            Payload::TableSection(s) => current(&mut stack)?.1 += s.count(),
            Payload::End(_) => {
                stack.pop()?;
            }
            Payload::InstanceSection(s) => {
                let Frame::Component(modules) = stack.last()? else {
                    return None;
                };
                for instance in s {
                    if let Instance::Instantiate { module_index, .. } = instance.ok()? {
                        let (memories, tables) = *modules.get(module_index as usize)?;
                        footprint.core_instances += 1;
                        footprint.memories += memories;
                        footprint.tables += tables;
                    }
                }
            }
            _ => {}
        }
    }
    (stack.is_empty() && footprint.core_instances > 0).then_some(footprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded component is one guest module plus wit-component's
    /// shims: more than one core instance, exactly one memory.
    #[test]
    fn the_policy_component() {
        let f = of(crate::COMPONENT).expect("readable");
        assert!(f.core_instances > 1, "{f:?}");
        assert_eq!(f.memories, 1, "{f:?}");
        assert!(f.tables >= 1, "{f:?}");
    }

    #[test]
    fn garbage_is_not_sized() {
        assert_eq!(of(b"not wasm"), None);
        assert_eq!(of(&[]), None);
    }
}
