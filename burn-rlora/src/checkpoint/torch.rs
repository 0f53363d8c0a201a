//! A strict, bounded reader of exactly what `torch.save` writes for a flat
//! state dict: the reference's `adapter_model.bin`.
//!
//! # Why a reader of our own
//!
//! Adapter files come from other people, so reading one must be as safe as
//! reading safetensors: no code execution, no panic, no abort, memory and time
//! linear in the file. A general pickle reader (burn-store's, for example)
//! builds whatever object graph the file describes: deep nesting overflows
//! the stack, a length field allocates before anything is read, memo
//! references duplicate objects, a shape larger than its storage allocates
//! from the shape, and a missing storage is filled with zeros. Validating the
//! file first and then handing it to such a reader would mean writing the
//! same parser twice. A state dict needs very little of pickle, so this
//! module reads that little and refuses everything else:
//!
//! * The container is a zip archive (read with the `zip` crate) holding one
//!   `<name>/data.pkl`, the storages `<name>/data/<key>` and optionally
//!   `<name>/byteorder` (`little` or `big`). Entries must be stored
//!   uncompressed (torch never compresses them), so no entry can expand
//!   beyond the file's size; the zip crate checks their CRC.
//! * The pickle runs on a small stack machine that knows only the opcodes
//!   torch emits for a state dict: `PROTO`, `FRAME`, `EMPTY_DICT`, `MARK`,
//!   `BINUNICODE`, `SHORT_BINUNICODE`, `BINPUT`, `LONG_BINPUT`, `MEMOIZE`,
//!   `BINGET`, `LONG_BINGET`, `GLOBAL`, `STACK_GLOBAL`, `BINPERSID`,
//!   `TUPLE`, `TUPLE1..3`, `EMPTY_TUPLE`, `BININT`, `BININT1`, `BININT2`,
//!   `LONG1`, `NEWTRUE`, `NEWFALSE`, `NONE`, `REDUCE`, `SETITEM`, `SETITEMS`,
//!   `BUILD` and `STOP`. The only callables are
//!   `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter`,
//!   `collections.OrderedDict` and the `torch.*Storage` types, and they are
//!   interpreted, never called. Lists, sets, floats and every other opcode
//!   are refused.
//! * Bounds: every opcode reads at least one byte and pushes at most one
//!   value, so the number of objects is at most the pickle's length; string
//!   lengths are checked against the bytes that remain before anything is
//!   allocated; values share memo entries instead of copying them; nesting is
//!   at most [`MAX_DEPTH`] levels (so dropping a value cannot overflow the
//!   stack); dictionary keys are looked up in a map, so `SETITEMS` is linear.
//!   A dictionary, once placed inside another value, can no longer be
//!   changed, so no reference cycle can be built.
//! * Tensors: offset, shape and strides are checked against the storage's
//!   element count (`offset + sum((size - 1) * stride) < numel`), the
//!   storage's entry must hold exactly `numel * element size` bytes, a tensor
//!   may not have more elements than its storage, and all tensors together
//!   may not decode to more elements than the file has bytes. A missing,
//!   truncated or too short storage is an error, never filled in.
//!
//! Legacy (pre-zip, torch < 1.6) files are refused with a message saying so.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read};
use std::rc::Rc;

use burn::tensor::{bf16, f16};
use zip::{CompressionMethod, ZipArchive};

use super::error::CheckpointError;
pub use super::format::RawTensors;

/// The deepest nesting of tuples and dictionaries the reader accepts.
pub const MAX_DEPTH: usize = 32;

/// Element types of torch storages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    F32,
    F64,
    F16,
    BF16,
    /// Another storage type: its name and element size (bounds are still checked).
    Other(&'static str, usize),
}

impl Kind {
    fn from_global(name: &str) -> Option<Self> {
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

    fn size(self) -> usize {
        match self {
            Kind::F32 => 4,
            Kind::F64 => 8,
            Kind::F16 | Kind::BF16 => 2,
            Kind::Other(_, s) => s,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Callable {
    RebuildTensor,
    RebuildParameter,
    OrderedDict,
    Storage(Kind),
}

#[derive(Debug)]
struct Dict {
    items: BTreeMap<Rc<str>, Value>,
    /// Set once the dict is placed inside another value: it is then immutable.
    sealed: bool,
    depth: usize,
}

#[derive(Debug)]
struct StorageRef {
    kind: Kind,
    key: Rc<str>,
    numel: u64,
}

#[derive(Debug)]
struct TensorRef {
    storage: Rc<StorageRef>,
    offset: u64,
    shape: Vec<u64>,
    stride: Vec<u64>,
}

#[derive(Debug, Clone)]
enum Value {
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
    fn depth(&self) -> usize {
        match self {
            Value::Tuple(_, d) => *d,
            Value::Dict(d) => d.borrow().depth,
            _ => 0,
        }
    }

    /// Mark a dict as contained (immutable from now on).
    fn seal(&self) {
        if let Value::Dict(d) = self {
            d.borrow_mut().sealed = true;
        }
    }

    fn name(&self) -> &'static str {
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

/// The pickle machine's state.
struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    /// Opcodes run plus items moved: linear in the pickle's length.
    work: u64,
}

type Fail = String;

impl<'a> Machine<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            work: 0,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Fail> {
        let rest = self.data.len() - self.pos;
        if n > rest {
            return Err(format!(
                "data.pkl: {n} bytes wanted at offset {}, only {rest} left",
                self.pos
            ));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, Fail> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, Fail> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn pop(&mut self) -> Result<Value, Fail> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(format!("data.pkl: stack underflow at offset {}", self.pos));
        }
        self.stack
            .pop()
            .ok_or_else(|| "data.pkl: stack underflow".into())
    }

    fn top(&self) -> Result<&Value, Fail> {
        let floor = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(v) if self.stack.len() > floor => Ok(v),
            _ => Err(format!("data.pkl: empty stack at offset {}", self.pos)),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, Fail> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| format!("data.pkl: no MARK before offset {}", self.pos))?;
        self.work += (self.stack.len() - mark) as u64;
        Ok(self.stack.split_off(mark))
    }

    fn push(&mut self, v: Value) -> Result<(), Fail> {
        if v.depth() > MAX_DEPTH {
            return Err(format!(
                "data.pkl: nesting deeper than {MAX_DEPTH} levels at offset {}",
                self.pos
            ));
        }
        self.stack.push(v);
        Ok(())
    }

    fn tuple(&mut self, items: Vec<Value>) -> Result<(), Fail> {
        let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        items.iter().for_each(Value::seal);
        self.push(Value::Tuple(items.into(), depth))
    }

    fn string(&mut self, n: usize) -> Result<(), Fail> {
        let bytes = self.take(n)?;
        let s = std::str::from_utf8(bytes).map_err(|_| {
            format!(
                "data.pkl: a string that is not UTF-8 at offset {}",
                self.pos
            )
        })?;
        self.push(Value::Str(s.into()))
    }

    fn line(&mut self) -> Result<&'a str, Fail> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .take(256)
            .position(|&b| b == b'\n')
            .ok_or_else(|| format!("data.pkl: GLOBAL name too long at offset {}", self.pos))?;
        let line = std::str::from_utf8(&rest[..end])
            .map_err(|_| "data.pkl: GLOBAL name is not UTF-8".to_string())?;
        self.pos += end + 1;
        Ok(line)
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), Fail> {
        let callable = match (module, name) {
            ("torch._utils", "_rebuild_tensor_v2") => Callable::RebuildTensor,
            ("torch._utils", "_rebuild_parameter") => Callable::RebuildParameter,
            ("collections", "OrderedDict") => Callable::OrderedDict,
            ("torch", storage) => Kind::from_global(storage)
                .map(Callable::Storage)
                .ok_or_else(|| format!("data.pkl: refusing global torch.{storage}"))?,
            _ => return Err(format!("data.pkl: refusing global {module}.{name}")),
        };
        self.push(Value::Global(callable))
    }

    fn set_items(&mut self, pairs: Vec<Value>) -> Result<(), Fail> {
        self.work += pairs.len() as u64;
        if !pairs.len().is_multiple_of(2) {
            return Err("data.pkl: SETITEMS with an odd number of items".into());
        }
        let Value::Dict(dict) = self.top()?.clone() else {
            return Err(format!(
                "data.pkl: SETITEM(S) on {} at offset {}",
                self.top()?.name(),
                self.pos
            ));
        };
        let mut it = pairs.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            v.seal();
            let depth = v.depth() + 1;
            let mut d = dict.borrow_mut();
            if d.sealed {
                return Err("data.pkl: a dict changed after it was placed in another value".into());
            }
            let Value::Str(key) = k else {
                return Err(format!("data.pkl: a dict key that is {}", k.name()));
            };
            if depth > MAX_DEPTH {
                return Err(format!("data.pkl: nesting deeper than {MAX_DEPTH} levels"));
            }
            d.depth = d.depth.max(depth);
            if d.items.insert(key.clone(), v).is_some() {
                return Err(format!("data.pkl: duplicate key '{key}'"));
            }
        }
        Ok(())
    }

    fn int(v: &Value, what: &str) -> Result<u64, Fail> {
        match v {
            Value::Int(i) if *i >= 0 => Ok(*i as u64),
            other => Err(format!(
                "data.pkl: {what} is {} (want an int >= 0)",
                other.name()
            )),
        }
    }

    fn ints(v: &Value, what: &str) -> Result<Vec<u64>, Fail> {
        match v {
            Value::Tuple(items, _) => items.iter().map(|i| Self::int(i, what)).collect(),
            other => Err(format!(
                "data.pkl: {what} is {} (want a tuple)",
                other.name()
            )),
        }
    }

    fn reduce(&mut self) -> Result<(), Fail> {
        let args = self.pop()?;
        let callable = self.pop()?;
        let Value::Tuple(args, _) = args else {
            return Err(format!("data.pkl: REDUCE arguments are {}", args.name()));
        };
        let value = match (callable, &args[..]) {
            (Value::Global(Callable::OrderedDict), []) => {
                Value::Dict(Rc::new(RefCell::new(Dict {
                    items: BTreeMap::new(),
                    sealed: false,
                    depth: 1,
                })))
            }
            (
                Value::Global(Callable::RebuildTensor),
                [storage, offset, shape, stride, Value::Bool, hooks, rest @ ..],
            ) if rest.len() <= 1 => {
                let Value::Storage(storage) = storage else {
                    return Err(format!("data.pkl: tensor storage is {}", storage.name()));
                };
                if !matches!(hooks, Value::Dict(d) if d.borrow().items.is_empty())
                    && !matches!(hooks, Value::None)
                {
                    return Err("data.pkl: a tensor with backward hooks".into());
                }
                let shape = Self::ints(shape, "a tensor size")?;
                let stride = Self::ints(stride, "a tensor stride")?;
                if shape.len() != stride.len() {
                    return Err(format!(
                        "data.pkl: size {shape:?} and stride {stride:?} differ in length"
                    ));
                }
                Value::Tensor(Rc::new(TensorRef {
                    storage: storage.clone(),
                    offset: Self::int(offset, "a storage offset")?,
                    shape,
                    stride,
                }))
            }
            (Value::Global(Callable::RebuildParameter), [Value::Tensor(t), Value::Bool, _]) => {
                Value::Tensor(t.clone())
            }
            (callable, args) => {
                return Err(format!(
                    "data.pkl: refusing to call {} with {} arguments at offset {}",
                    callable.name(),
                    args.len(),
                    self.pos
                ))
            }
        };
        self.push(value)
    }

    fn persistent(&mut self) -> Result<(), Fail> {
        let pid = self.pop()?;
        let Value::Tuple(items, _) = &pid else {
            return Err(format!("data.pkl: persistent id is {}", pid.name()));
        };
        match &items[..] {
            [Value::Str(tag), Value::Global(Callable::Storage(kind)), Value::Str(key), Value::Str(_), numel]
                if &**tag == "storage" =>
            {
                let numel = Self::int(numel, "a storage size")?;
                self.push(Value::Storage(Rc::new(StorageRef {
                    kind: *kind,
                    key: key.clone(),
                    numel,
                })))
            }
            _ => Err("data.pkl: a persistent id that is not a torch storage".into()),
        }
    }

    fn memo_get(&mut self, i: u32) -> Result<(), Fail> {
        let v = self
            .memo
            .get(&i)
            .cloned()
            .ok_or_else(|| format!("data.pkl: memo {i} is not set"))?;
        self.push(v)
    }

    fn run(&mut self) -> Result<Value, Fail> {
        loop {
            let op = self.u8()?;
            self.work += 1;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if !(2..=5).contains(&proto) {
                        return Err(format!("data.pkl: pickle protocol {proto}"));
                    }
                }
                0x95 => {
                    self.take(8)?;
                }
                b'}' => self.push(Value::Dict(Rc::new(RefCell::new(Dict {
                    items: BTreeMap::new(),
                    sealed: false,
                    depth: 1,
                }))))?,
                b'(' => self.marks.push(self.stack.len()),
                b'X' => {
                    let n = self.u32()? as usize;
                    self.string(n)?;
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    self.string(n)?;
                }
                b'q' => {
                    let i = self.u8()?;
                    let v = self.top()?.clone();
                    self.memo.insert(u32::from(i), v);
                }
                b'r' => {
                    let i = self.u32()?;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                0x94 => {
                    let i = u32::try_from(self.memo.len()).map_err(|e| e.to_string())?;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                b'h' => {
                    let i = self.u8()?;
                    self.memo_get(u32::from(i))?;
                }
                b'j' => {
                    let i = self.u32()?;
                    self.memo_get(i)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&module, &name) {
                        (Value::Str(m), Value::Str(n)) => {
                            let (m, n) = (m.clone(), n.clone());
                            self.global(&m, &n)?;
                        }
                        _ => return Err("data.pkl: STACK_GLOBAL without two strings".into()),
                    }
                }
                b'Q' => self.persistent()?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.tuple(items)?;
                }
                b')' => self.tuple(Vec::new())?,
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.tuple(items)?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(i64::from(v)))?;
                }
                b'M' => {
                    let b = self.take(2)?;
                    self.push(Value::Int(i64::from(u16::from_le_bytes([b[0], b[1]]))))?;
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(i64::from(v)))?;
                }
                0x8a => {
                    let n = usize::from(self.u8()?);
                    if n > 8 {
                        return Err(format!("data.pkl: an integer of {n} bytes"));
                    }
                    let b = self.take(n)?;
                    let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        [0xff; 8]
                    } else {
                        [0; 8]
                    };
                    buf[..n].copy_from_slice(b);
                    self.push(Value::Int(i64::from_le_bytes(buf)))?;
                }
                0x88 | 0x89 => self.push(Value::Bool)?,
                b'N' => self.push(Value::None)?,
                b'R' => self.reduce()?,
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'b' => {
                    // OrderedDict's instance state (`_metadata`): checked, then dropped.
                    let state = self.pop()?;
                    let target = self.top()?;
                    if !matches!(target, Value::Dict(_)) || !matches!(state, Value::Dict(_)) {
                        return Err(format!(
                            "data.pkl: BUILD of {} with {}",
                            target.name(),
                            state.name()
                        ));
                    }
                }
                b'.' => {
                    if !self.marks.is_empty() || self.stack.len() != 1 {
                        return Err("data.pkl: STOP with a malformed stack".into());
                    }
                    return self.pop();
                }
                other => {
                    return Err(format!(
                        "data.pkl: refusing opcode 0x{other:02x} at offset {}",
                        self.pos - 1
                    ))
                }
            }
        }
    }
}

/// The tensors of a state dict, with the machine's work.
type StateDict = (Vec<(String, Rc<TensorRef>)>, u64);

/// Run the pickle `data` and return the state dict's `(key, tensor)` pairs.
fn state_dict(data: &[u8]) -> Result<StateDict, Fail> {
    let mut machine = Machine::new(data);
    let Value::Dict(dict) = machine.run()? else {
        return Err("data.pkl: the pickle is not a dict".into());
    };
    let dict = dict.borrow();
    let tensors = dict
        .items
        .iter()
        .map(|(k, v)| match v {
            Value::Tensor(t) => Ok((k.to_string(), t.clone())),
            other => Err(format!("'{k}' is {}, not a tensor", other.name())),
        })
        .collect::<Result<_, Fail>>()?;
    Ok((tensors, machine.work))
}

fn decode(bytes: &[u8], kind: Kind, big_endian: bool) -> Vec<f64> {
    let size = kind.size();
    bytes
        .chunks_exact(size)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(c);
            if big_endian {
                b[..size].reverse();
            }
            match kind {
                Kind::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                Kind::F64 => f64::from_le_bytes(b),
                Kind::F16 => f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f64(),
                Kind::BF16 => bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f64(),
                Kind::Other(..) => f64::NAN,
            }
        })
        .collect()
}

/// Element size, bounds and budget checks for one tensor, then its values.
fn tensor_values(
    t: &TensorRef,
    storage: &[u8],
    big_endian: bool,
    budget: &mut u64,
) -> Result<Result<Vec<f64>, String>, Fail> {
    let size = t.storage.kind.size() as u64;
    let numel: u64 = t
        .shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or("the size overflows")?;
    // The elements actually present (the fetch checked they match the declared size).
    let stored = t.storage.numel.min(storage.len() as u64 / size);
    if numel > stored {
        return Err(format!(
            "size {:?} has {numel} elements, its storage only {stored}",
            t.shape
        ));
    }
    if numel > 0 {
        let last = t
            .shape
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |acc, (&d, &s)| {
                (d - 1).checked_mul(s).and_then(|x| x.checked_add(acc))
            })
            .ok_or("offset and strides overflow")?;
        if last >= stored {
            return Err(format!(
                "offset {} with size {:?} and stride {:?} reaches element {last}, past the \
                 storage's {stored} elements",
                t.offset, t.shape, t.stride
            ));
        }
    }
    *budget = budget.checked_sub(numel).ok_or(
        "the tensors hold more elements in total than the file has bytes (storages \
         shared beyond reason)",
    )?;
    if let Kind::Other(name, _) = t.storage.kind {
        return Ok(Err(name.to_string()));
    }
    // Gather the elements in row-major order (the storage length was checked).
    let size = size as usize;
    let mut bytes = Vec::with_capacity(numel as usize * size);
    let mut index = vec![0u64; t.shape.len()];
    for _ in 0..numel {
        let at = t.offset + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<u64>();
        let at = at as usize * size;
        bytes.extend_from_slice(&storage[at..at + size]);
        for k in (0..index.len()).rev() {
            index[k] += 1;
            if index[k] < t.shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    Ok(Ok(decode(&bytes, t.storage.kind, big_endian)))
}

/// Read one stored (uncompressed) entry, exactly `want` bytes long.
fn read_entry(
    zip: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    want: Option<u64>,
    max: u64,
) -> Result<Vec<u8>, Fail> {
    let mut entry = zip
        .by_name(name)
        .map_err(|e| format!("entry '{name}': {e}"))?;
    if entry.compression() != CompressionMethod::Stored || entry.encrypted() {
        return Err(format!(
            "entry '{name}' is compressed or encrypted (torch stores entries uncompressed)"
        ));
    }
    let size = entry.size();
    if size > max {
        return Err(format!(
            "entry '{name}' claims {size} bytes, more than the file"
        ));
    }
    if let Some(want) = want.filter(|&w| w != size) {
        return Err(format!(
            "storage '{name}' holds {size} bytes, its tensors need exactly {want}"
        ));
    }
    let mut out = Vec::with_capacity(size as usize);
    entry
        .by_ref()
        .take(size + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("entry '{name}': {e}"))?;
    if out.len() as u64 != size {
        return Err(format!(
            "entry '{name}' is truncated: {} of {size} bytes",
            out.len()
        ));
    }
    Ok(out)
}

/// Read a `torch.save` zip of a flat state dict from `bytes` (see the
/// [module docs](self)): every tensor's shape and, for float storages, its
/// values as f64 (other dtypes give their name as the error); `what` names
/// the file in errors.
///
/// # Errors
///
/// [`CheckpointError::CorruptTensors`] saying what is wrong, and where.
pub fn read_torch(bytes: &[u8], what: &str) -> Result<RawTensors, CheckpointError> {
    read(bytes).map_err(|reason| CheckpointError::CorruptTensors {
        what: what.to_string(),
        reason,
    })
}

/// Run a state dict's pickle against storages given by key (no zip), with
/// `max` as the file size for the budgets; returns the tensors and the
/// machine's work (opcodes run plus items moved), for tests and fuzzing
/// (feature `testing`).
///
/// # Errors
///
/// As [`read_torch`].
#[cfg(feature = "testing")]
pub fn read_pickle(
    pickle: &[u8],
    storages: &HashMap<String, Vec<u8>>,
    max: u64,
) -> Result<(RawTensors, u64), CheckpointError> {
    let fetch = |key: &str, want: u64| match storages.get(key) {
        Some(data) if data.len() as u64 == want => Ok(data.clone()),
        Some(data) => Err(format!(
            "storage '{key}' holds {} bytes, its tensors need exactly {want}",
            data.len()
        )),
        None => Err(format!("storage '{key}' is missing")),
    };
    tensors(pickle, fetch, max, false).map_err(|reason| CheckpointError::CorruptTensors {
        what: "pickle".into(),
        reason,
    })
}

fn read(bytes: &[u8]) -> Result<RawTensors, Fail> {
    if !bytes.starts_with(b"PK") {
        return Err(
            "not a zip-based torch file (the legacy format of torch < 1.6 and \
                    other pickles are not read)"
                .into(),
        );
    }
    let max = bytes.len() as u64;
    let mut zip =
        ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a valid zip: {e}"))?;
    let pickles: Vec<String> = zip
        .file_names()
        .filter(|n| {
            n.strip_suffix("/data.pkl")
                .is_some_and(|p| !p.contains('/'))
        })
        .take(2)
        .map(str::to_string)
        .collect();
    let pkl = match &pickles[..] {
        [one] => one.clone(),
        [] => return Err("no '<name>/data.pkl' in the zip".into()),
        _ => return Err("more than one '<name>/data.pkl' in the zip".into()),
    };
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let order = format!("{prefix}byteorder");
    let big_endian = match zip.index_for_name(&order) {
        None => false,
        Some(_) => match &read_entry(&mut zip, &order, None, 16)?[..] {
            b"little" => false,
            b"big" => true,
            other => return Err(format!("byteorder is '{}'", String::from_utf8_lossy(other))),
        },
    };
    let pickle = read_entry(&mut zip, &pkl, None, max)?;
    let fetch = |key: &str, want: u64| {
        read_entry(&mut zip, &format!("{prefix}data/{key}"), Some(want), max)
    };
    Ok(tensors(&pickle, fetch, max, big_endian)?.0)
}

/// Run the pickle, then check and decode every tensor, fetching each
/// storage once (by key, with the exact byte length its type and size need).
fn tensors(
    pickle: &[u8],
    mut fetch: impl FnMut(&str, u64) -> Result<Vec<u8>, Fail>,
    max: u64,
    big_endian: bool,
) -> Result<(RawTensors, u64), Fail> {
    let (tensors, work) = state_dict(pickle)?;
    let mut storages: HashMap<Rc<str>, Vec<u8>> = HashMap::new();
    let mut declared: HashMap<Rc<str>, (Kind, u64)> = HashMap::new();
    let mut budget = max;
    let mut out = BTreeMap::new();
    for (key, t) in tensors {
        let s = &t.storage;
        let first = *declared.entry(s.key.clone()).or_insert((s.kind, s.numel));
        if first != (s.kind, s.numel) {
            return Err(format!(
                "'{key}': storage '{}' is declared as {:?} x {} and as {:?} x {}",
                s.key, first.0, first.1, s.kind, s.numel
            ));
        }
        if !storages.contains_key(&s.key) {
            let want = s
                .numel
                .checked_mul(s.kind.size() as u64)
                .filter(|&w| w <= max)
                .ok_or_else(|| {
                    format!(
                        "'{key}': storage '{}' of {} elements is larger than the file",
                        s.key, s.numel
                    )
                })?;
            let data = fetch(&s.key, want).map_err(|e| format!("'{key}': {e}"))?;
            storages.insert(s.key.clone(), data);
        }
        let values = tensor_values(&t, &storages[&s.key], big_endian, &mut budget)
            .map_err(|e| format!("'{key}': {e}"))?;
        let shape = t.shape.iter().map(|&d| d as usize).collect();
        out.insert(key, (shape, values));
    }
    Ok((out, work))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pickle: &[u8]) -> Result<Value, Fail> {
        Machine::new(pickle).run()
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat_n(b')', 1));
        p.extend(std::iter::repeat_n(0x85, 100_000));
        p.push(b'.');
        let err = run(&p).unwrap_err();
        assert!(err.contains("nesting deeper"), "{err}");
    }

    #[test]
    fn huge_string_length_is_checked_against_the_input() {
        let p = [0x80, 2, b'X', 0xff, 0xff, 0xff, 0xff, b'a'];
        let err = run(&p).unwrap_err();
        assert!(err.contains("only 1 left"), "{err}");
    }

    #[test]
    fn memo_references_share_instead_of_copying() {
        // A 1000-byte string referenced 100_000 times: one allocation, shared.
        let mut p = vec![0x80, 2, b'(', b'X'];
        p.extend(1000u32.to_le_bytes());
        p.extend([b'a'; 1000]);
        p.extend([b'q', 0]);
        p.extend(std::iter::repeat_n([b'h', 0], 100_000).flatten());
        p.extend([b't', b'.']);
        let Value::Tuple(items, _) = run(&p).unwrap() else {
            panic!("not a tuple")
        };
        assert_eq!(items.len(), 100_001);
        let Value::Str(first) = &items[0] else {
            panic!("not a string")
        };
        assert!(items
            .iter()
            .all(|v| matches!(v, Value::Str(s) if Rc::ptr_eq(s, first))));
    }
}
