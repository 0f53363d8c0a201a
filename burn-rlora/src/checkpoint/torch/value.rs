//! The values a state dict's pickle builds: storages, tensors, tuples,
//! dictionaries and the few globals the reader accepts.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Element types of torch storages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    F32,
    F64,
    F16,
    BF16,
    /// Another storage type: its name and element size (bounds are still checked).
    Other(&'static str, usize),
}

impl Kind {
    pub(super) fn from_global(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Kind::F32,
            "DoubleStorage" => Kind::F64,
            "HalfStorage" => Kind::F16,
            "BFloat16Storage" => Kind::BF16,
            "LongStorage" => Kind::Other("I64", 8),
            "IntStorage" => Kind::Other("I32", 4),
            "ShortStorage" => Kind::Other("I16", 2),
            "CharStorage" => Kind::Other("I8", 1),
            "ByteStorage" => Kind::Other("U8", 1),
            "BoolStorage" => Kind::Other("Bool", 1),
            _ => return None,
        })
    }

    /// Bytes per element.
    pub(super) fn size(self) -> usize {
        match self {
            Kind::F32 => 4,
            Kind::F64 => 8,
            Kind::F16 | Kind::BF16 => 2,
            Kind::Other(_, s) => s,
        }
    }
}

/// The globals the reader accepts; they are interpreted, never called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Callable {
    RebuildTensor,
    RebuildParameter,
    OrderedDict,
    Storage(Kind),
}

/// A dictionary (`{}` or `OrderedDict()`) keyed by string.
#[derive(Debug)]
pub(super) struct Dict {
    pub(super) items: BTreeMap<Rc<str>, Value>,
    /// Set once the dict is placed inside another value: it is then immutable.
    pub(super) sealed: bool,
    pub(super) depth: usize,
}

/// A persistent id naming a storage entry of the zip, with its type and size.
#[derive(Debug)]
pub(super) struct StorageRef {
    pub(super) kind: Kind,
    pub(super) key: Rc<str>,
    pub(super) numel: u64,
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage.
#[derive(Debug)]
pub(super) struct TensorRef {
    pub(super) storage: Rc<StorageRef>,
    pub(super) offset: u64,
    pub(super) shape: Vec<u64>,
    pub(super) stride: Vec<u64>,
}

/// A value on the machine's stack or in its memo; containers are shared, not copied.
#[derive(Debug, Clone)]
pub(super) enum Value {
    None,
    Bool,
    Int(i64),
    Str(Rc<str>),
    Tuple(Rc<[Value]>, usize),
    Dict(Rc<RefCell<Dict>>),
    Global(Callable),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    /// Nesting depth: 0 for scalars, 1 + the deepest item for containers.
    pub(super) fn depth(&self) -> usize {
        match self {
            Value::Tuple(_, d) => *d,
            Value::Dict(d) => d.borrow().depth,
            _ => 0,
        }
    }

    /// Mark a dict as contained (immutable from now on).
    pub(super) fn seal(&self) {
        if let Value::Dict(d) = self {
            d.borrow_mut().sealed = true;
        }
    }

    /// What the value is, for error messages.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool => "a bool",
            Value::Int(_) => "an int",
            Value::Str(_) => "a string",
            Value::Tuple(..) => "a tuple",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a global",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
        }
    }
}
