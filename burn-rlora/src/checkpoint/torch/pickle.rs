//! The pickle stack machine: the opcodes `torch.save` emits for a state
//! dict, run with the bounds the [module docs](super) state.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use super::value::{Callable, Dict, Kind, StorageRef, TensorRef, Value};
use super::Fail;

/// The deepest nesting of tuples and dictionaries the reader accepts.
pub const MAX_DEPTH: usize = 32;

/// The pickle machine's state.
pub(super) struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    /// Opcodes run plus items moved: linear in the pickle's length.
    pub(super) work: u64,
}

impl<'a> Machine<'a> {
    /// A machine about to run the pickle `data`.
    pub(super) fn new(data: &'a [u8]) -> Self {
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

    /// Run opcodes until `STOP` and return the one value left on the stack.
    pub(super) fn run(&mut self) -> Result<Value, Fail> {
        loop {
            let op = self.u8()?;
            self.work += 1;
            if op == b'.' {
                if !self.marks.is_empty() || self.stack.len() != 1 {
                    return Err("data.pkl: STOP with a malformed stack".into());
                }
                return self.pop();
            }
            self.step(op)?;
        }
    }

    /// Run one opcode other than `STOP`, by the group it belongs to.
    fn step(&mut self, op: u8) -> Result<(), Fail> {
        match op {
            0x80 => {
                let proto = self.u8()?;
                if !(2..=5).contains(&proto) {
                    return Err(format!("data.pkl: pickle protocol {proto}"));
                }
                Ok(())
            }
            0x95 => self.take(8).map(drop),
            b'(' => {
                self.marks.push(self.stack.len());
                Ok(())
            }
            b'X' => {
                let n = self.u32()? as usize;
                self.string(n)
            }
            0x8c => {
                let n = self.u8()? as usize;
                self.string(n)
            }
            b'q' | b'r' | 0x94 | b'h' | b'j' => self.memo_op(op),
            b'c' | 0x93 | b'Q' | b'R' => self.call_op(op),
            b't' | b')' | 0x85..=0x87 => self.tuple_op(op),
            b'K' | b'M' | b'J' | 0x8a | 0x88 | 0x89 | b'N' => self.scalar_op(op),
            b'}' | b's' | b'u' | b'b' => self.dict_op(op),
            other => Err(self.refuse(other)),
        }
    }

    /// The error for an opcode this reader does not run.
    fn refuse(&self, op: u8) -> Fail {
        format!(
            "data.pkl: refusing opcode 0x{op:02x} at offset {}",
            self.pos - 1
        )
    }

    /// `BINPUT`, `LONG_BINPUT`, `MEMOIZE`, `BINGET`, `LONG_BINGET`.
    fn memo_op(&mut self, op: u8) -> Result<(), Fail> {
        let put = match op {
            b'q' => u32::from(self.u8()?),
            b'r' => self.u32()?,
            0x94 => u32::try_from(self.memo.len()).map_err(|e| e.to_string())?,
            b'h' => {
                let i = self.u8()?;
                return self.memo_get(u32::from(i));
            }
            b'j' => {
                let i = self.u32()?;
                return self.memo_get(i);
            }
            other => return Err(self.refuse(other)),
        };
        let v = self.top()?.clone();
        self.memo.insert(put, v);
        Ok(())
    }

    /// `GLOBAL`, `STACK_GLOBAL`, `BINPERSID` and `REDUCE`.
    fn call_op(&mut self, op: u8) -> Result<(), Fail> {
        match op {
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(module, name)
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (&module, &name) {
                    (Value::Str(m), Value::Str(n)) => self.global(&m.clone(), &n.clone()),
                    _ => Err("data.pkl: STACK_GLOBAL without two strings".into()),
                }
            }
            b'Q' => self.persistent(),
            b'R' => self.reduce(),
            other => Err(self.refuse(other)),
        }
    }

    /// `TUPLE`, `EMPTY_TUPLE`, `TUPLE1`, `TUPLE2`, `TUPLE3`.
    fn tuple_op(&mut self, op: u8) -> Result<(), Fail> {
        let items = match op {
            b't' => self.pop_mark()?,
            b')' => Vec::new(),
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                items
            }
            other => return Err(self.refuse(other)),
        };
        self.tuple(items)
    }

    /// `BININT1`, `BININT2`, `BININT`, `LONG1`, `NEWTRUE`, `NEWFALSE`, `NONE`.
    fn scalar_op(&mut self, op: u8) -> Result<(), Fail> {
        let value = match op {
            b'K' => Value::Int(i64::from(self.u8()?)),
            b'M' => {
                let b = self.take(2)?;
                Value::Int(i64::from(u16::from_le_bytes([b[0], b[1]])))
            }
            b'J' => Value::Int(i64::from(self.u32()? as i32)),
            0x8a => Value::Int(self.long1()?),
            0x88 | 0x89 => Value::Bool,
            b'N' => Value::None,
            other => return Err(self.refuse(other)),
        };
        self.push(value)
    }

    /// The little-endian two's-complement integer of `LONG1` (at most 8 bytes).
    fn long1(&mut self) -> Result<i64, Fail> {
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
        Ok(i64::from_le_bytes(buf))
    }

    /// `EMPTY_DICT`, `SETITEM`, `SETITEMS` and `BUILD`.
    fn dict_op(&mut self, op: u8) -> Result<(), Fail> {
        match op {
            b'}' => self.push(Value::Dict(Rc::new(RefCell::new(Dict {
                items: BTreeMap::new(),
                sealed: false,
                depth: 1,
            })))),
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.set_items(vec![k, v])
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)
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
                Ok(())
            }
            other => Err(self.refuse(other)),
        }
    }
}

/// The tensors of a state dict, with the machine's work.
pub(super) type StateDict = (Vec<(String, Rc<TensorRef>)>, u64);

/// Run the pickle `data` and return the state dict's `(key, tensor)` pairs.
pub(super) fn state_dict(data: &[u8]) -> Result<StateDict, Fail> {
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
