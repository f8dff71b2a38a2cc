using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;
using static TorchSharp.torch;

namespace DreamBooth.Loading.Pickle;

/// <summary>
/// A minimal, allowlist-only unpickler for PyTorch checkpoints (pickle protocols 0-5, the opcodes of
/// CPython's <c>Lib/pickle.py</c>). Unlike Python's unpickler it never imports or calls anything: a
/// GLOBAL resolves only to one of the known names below, each of which builds plain data
/// (tensors through <see cref="TorchTensorRef"/>, containers, numbers, strings), and the few
/// harmless non-tensor classes that Stable Diffusion checkpoints carry (pytorch_lightning callbacks,
/// numpy scalars and dtypes) become inert <see cref="PickleObject"/>s, following the allowlist of
/// AUTOMATIC1111's <c>modules/safe.py</c>. Any other global (os.system, builtins.eval, ...) is refused
/// with a <see cref="ModelLoadException"/> naming the file and the global, before anything uses it.
/// Every length is checked against the bytes that remain, so corrupt input cannot allocate
/// unboundedly or loop.
/// </summary>
public static class SafeUnpickler
{
    /// <summary>Largest number of dimensions accepted for a tensor.</summary>
    public const int MaxTensorDims = 64;

    const int MaxStackDepth = 1_000_000;

    /// <summary>Values pushed or stored in containers, in all (bounds memory for hostile pickles; real checkpoints use well under 1M).</summary>
    const long MaxValues = 10_000_000;
    const int MaxMarkDepth = 100_000;
    const int MaxTextNumberLength = 4096;
    const int MaxLongBytes = 1024;

    static readonly Dictionary<string, ScalarType> StorageTypes = new()
    {
        ["FloatStorage"] = ScalarType.Float32,
        ["DoubleStorage"] = ScalarType.Float64,
        ["HalfStorage"] = ScalarType.Float16,
        ["BFloat16Storage"] = ScalarType.BFloat16,
        ["LongStorage"] = ScalarType.Int64,
        ["IntStorage"] = ScalarType.Int32,
        ["ShortStorage"] = ScalarType.Int16,
        ["CharStorage"] = ScalarType.Int8,
        ["ByteStorage"] = ScalarType.Byte,
        ["BoolStorage"] = ScalarType.Bool,
    };

    /// <summary>Non-tensor classes seen in real checkpoints that are kept as inert placeholders.</summary>
    static readonly HashSet<string> PlaceholderClasses = new(StringComparer.Ordinal)
    {
        "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
        "pytorch_lightning.callbacks.model_checkpoint",
        "pytorch_lightning.callbacks.early_stopping.EarlyStopping",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.ndarray",
        "torch.nn.modules.container.ParameterDict",
        "torch.float32", "torch.float16", "torch.bfloat16", "torch.float64", "torch.int64", "torch.int32",
        "torch.uint8", "torch.bool", "torch.int8", "torch.int16",
        "torch.device",
    };

    static PickleGlobal? Resolve(string module, string name)
    {
        string full = module + "." + name;
        switch (module)
        {
            case "torch._utils":
                return name switch
                {
                    "_rebuild_tensor" => new(full, GlobalKind.RebuildTensor),
                    "_rebuild_tensor_v2" => new(full, GlobalKind.RebuildTensorV2),
                    "_rebuild_parameter" => new(full, GlobalKind.RebuildParameter),
                    "_rebuild_parameter_with_state" => new(full, GlobalKind.RebuildParameterWithState),
                    _ => null,
                };
            case "torch" when StorageTypes.TryGetValue(name, out var st):
                return new(full, GlobalKind.Storage, st);
            case "torch" when name == "Size":
                return new(full, GlobalKind.TorchSize);
            case "collections" or "typing" when name == "OrderedDict":
                return new(full, GlobalKind.OrderedDict);
            case "builtins" or "__builtin__" when name == "set":
                return new(full, GlobalKind.Set);
            case "builtins" or "__builtin__" when name == "frozenset":
                return new(full, GlobalKind.FrozenSet);
            case "_codecs" when name == "encode":
                return new(full, GlobalKind.CodecsEncode);
            case "numpy.core.multiarray" or "numpy._core.multiarray" when name == "scalar":
                return new(full, GlobalKind.NumpyScalar);
            case "numpy" when name == "dtype":
                return new(full, GlobalKind.NumpyDType);
        }
        return PlaceholderClasses.Contains(full) ? new(full, GlobalKind.Placeholder) : null;
    }

    /// <summary>
    /// Resolves a torch storage persistent id <c>('storage', torch.XStorage, key, location, numel)</c>
    /// to the storage it names (the same key must give the same object, so that tensors share it).
    /// </summary>
    public delegate TorchStorageRef StorageResolver(string key, ScalarType dtype, long numElements, string location);

    /// <summary>
    /// Unpickles <paramref name="data"/> (one pickle, up to its STOP). Persistent ids must be torch
    /// storage ids; <paramref name="storages"/> resolves them.
    /// </summary>
    public static object? Load(ReadOnlySpan<byte> data, string path, StorageResolver storages) =>
        Load(data, path, storages, out _);

    /// <summary>As <see cref="Load(ReadOnlySpan{byte}, string, StorageResolver)"/>; also returns how many bytes the pickle used.</summary>
    public static object? Load(ReadOnlySpan<byte> data, string path, StorageResolver storages, out int consumed)
    {
        var u = new Machine(path, storages);
        try
        {
            var result = u.Run(data, out consumed);
            return result;
        }
        catch (ModelLoadException)
        {
            throw;
        }
        catch (Exception e) when (e is InvalidCastException or ArgumentException or IndexOutOfRangeException
                                      or OverflowException or FormatException or DecoderFallbackException
                                      or KeyNotFoundException or InvalidOperationException)
        {
            throw new ModelLoadException(path, $"corrupt pickle: {e.Message}", e);
        }
    }

    sealed class Mark
    {
        public static readonly Mark Instance = new();
    }

    ref struct Reader(ReadOnlySpan<byte> data)
    {
        readonly ReadOnlySpan<byte> data = data;

        public int Pos;

        public readonly int Remaining => data.Length - Pos;

        public ReadOnlySpan<byte> Take(long n, string path, string what)
        {
            if (n < 0 || n > Remaining)
                throw new ModelLoadException(path, $"corrupt pickle: {what} of {n} bytes at offset {Pos} runs past the end of the pickle ({Remaining} bytes left); the file is truncated or damaged");
            var s = data.Slice(Pos, (int)n);
            Pos += (int)n;
            return s;
        }

        public byte Byte(string path) => Take(1, path, "opcode argument")[0];

        public ReadOnlySpan<byte> Line(string path)
        {
            int i = data[Pos..].IndexOf((byte)'\n');
            if (i < 0)
                throw new ModelLoadException(path, $"corrupt pickle: unterminated text argument at offset {Pos}");
            var s = data.Slice(Pos, i);
            Pos += i + 1;
            return s;
        }
    }

    sealed class Machine(string path, StorageResolver storages)
    {
        readonly List<object?> stack = new();
        readonly Stack<int> marks = new();
        readonly Dictionary<long, object?> memo = new();

        ModelLoadException Fail(string problem) => new(path, problem);

        long values;

        void Count(int n = 1)
        {
            values += n;
            if (values > MaxValues)
                throw Fail($"refused pickle: it builds more than {MaxValues} values, far more than any checkpoint (a damaged or hostile file)");
        }

        void Push(object? o)
        {
            if (stack.Count >= MaxStackDepth)
                throw Fail($"corrupt pickle: more than {MaxStackDepth} values on the unpickler stack");
            Count();
            stack.Add(o);
        }

        object? Pop()
        {
            int floor = marks.Count > 0 ? marks.Peek() : 0;
            if (stack.Count <= floor)
                throw Fail("corrupt pickle: pop from an empty stack (a malformed or truncated pickle)");
            var o = stack[^1];
            stack.RemoveAt(stack.Count - 1);
            return o;
        }

        object? Top()
        {
            int floor = marks.Count > 0 ? marks.Peek() : 0;
            if (stack.Count <= floor)
                throw Fail("corrupt pickle: the stack is empty where a value was expected");
            return stack[^1];
        }

        List<object?> PopMark()
        {
            if (marks.Count == 0)
                throw Fail("corrupt pickle: an opcode needs a MARK but none is set");
            int m = marks.Pop();
            var items = stack.GetRange(m, stack.Count - m);
            stack.RemoveRange(m, stack.Count - m);
            return items;
        }

        void Put(long index)
        {
            if (index < 0)
                throw Fail($"corrupt pickle: negative memo index {index}");
            Count();
            memo[index] = Top();
        }

        object? Get(long index) => memo.TryGetValue(index, out var v)
            ? v
            : throw Fail($"corrupt pickle: memo index {index} was never stored");

        public object? Run(ReadOnlySpan<byte> data, out int consumed)
        {
            var r = new Reader(data);
            while (true)
            {
                if (r.Remaining == 0)
                    throw Fail("truncated pickle: the data ends before the STOP opcode");
                byte op = data[r.Pos++];
                switch (op)
                {
                    case 0x80: // PROTO
                        int proto = r.Byte(path);
                        if (proto > 5)
                            throw Fail($"unsupported pickle protocol {proto} (0-5 are known)");
                        break;
                    case 0x95: // FRAME: a length hint only
                        r.Take(8, path, "FRAME length");
                        break;
                    case (byte)'.': // STOP
                        consumed = r.Pos;
                        return Pop();
                    case (byte)'(':
                        if (marks.Count >= MaxMarkDepth)
                            throw Fail("corrupt pickle: too many nested MARKs");
                        marks.Push(stack.Count);
                        break;
                    case (byte)'0': Pop(); break; // POP
                    case (byte)'1': PopMark(); break; // POP_MARK
                    case (byte)'2': Push(Top()); break; // DUP
                    case (byte)'N': Push(null); break;
                    case 0x88: Push(true); break;
                    case 0x89: Push(false); break;
                    case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(r.Take(4, path, "BININT"))); break;
                    case (byte)'K': Push((long)r.Byte(path)); break;
                    case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(r.Take(2, path, "BININT2"))); break;
                    case 0x8a: // LONG1
                        Push(DecodeLong(r.Take(r.Byte(path), path, "LONG1")));
                        break;
                    case 0x8b: // LONG4
                        {
                            int n = BinaryPrimitives.ReadInt32LittleEndian(r.Take(4, path, "LONG4 length"));
                            if (n < 0 || n > MaxLongBytes)
                                throw Fail($"corrupt pickle: LONG4 of {n} bytes (at most {MaxLongBytes} accepted)");
                            Push(DecodeLong(r.Take(n, path, "LONG4")));
                            break;
                        }
                    case (byte)'I': Push(ParseTextInt(r.Line(path))); break;
                    case (byte)'L': Push(ParseTextInt(TrimL(r.Line(path)))); break;
                    case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(r.Take(8, path, "BINFLOAT"))); break;
                    case (byte)'F':
                        {
                            var line = r.Line(path);
                            if (line.Length > MaxTextNumberLength || !double.TryParse(Encoding.ASCII.GetString(line), NumberStyles.Float, CultureInfo.InvariantCulture, out double d))
                                throw Fail("corrupt pickle: FLOAT argument is not a number");
                            Push(d);
                            break;
                        }
                    case (byte)'X': // BINUNICODE
                        Push(Utf8(r.Take(BinaryPrimitives.ReadUInt32LittleEndian(r.Take(4, path, "BINUNICODE length")), path, "BINUNICODE")));
                        break;
                    case 0x8c: Push(Utf8(r.Take(r.Byte(path), path, "SHORT_BINUNICODE"))); break;
                    case 0x8d: Push(Utf8(r.Take(ReadLength8(ref r), path, "BINUNICODE8"))); break;
                    case (byte)'V': Push(RawUnicodeEscape(r.Line(path))); break;
                    case (byte)'T': // BINSTRING (py2 str): latin-1 text
                        {
                            int n = BinaryPrimitives.ReadInt32LittleEndian(r.Take(4, path, "BINSTRING length"));
                            Push(Encoding.Latin1.GetString(r.Take(n, path, "BINSTRING")));
                            break;
                        }
                    case (byte)'U': Push(Encoding.Latin1.GetString(r.Take(r.Byte(path), path, "SHORT_BINSTRING"))); break;
                    case (byte)'S': Push(ParseQuotedString(r.Line(path))); break;
                    case (byte)'B': Push(r.Take(BinaryPrimitives.ReadUInt32LittleEndian(r.Take(4, path, "BINBYTES length")), path, "BINBYTES").ToArray()); break;
                    case (byte)'C': Push(r.Take(r.Byte(path), path, "SHORT_BINBYTES").ToArray()); break;
                    case 0x8e: Push(r.Take(ReadLength8(ref r), path, "BINBYTES8").ToArray()); break;
                    case 0x96: Push(r.Take(ReadLength8(ref r), path, "BYTEARRAY8").ToArray()); break;
                    case (byte)'}': Push(new PickleDict()); break;
                    case (byte)']': Push(new PickleList()); break;
                    case (byte)')': Push(new PickleTuple([])); break;
                    case 0x8f: Push(new PickleList()); break; // EMPTY_SET
                    case (byte)'d': // DICT
                        {
                            var items = PopMark();
                            if (items.Count % 2 != 0)
                                throw Fail("corrupt pickle: DICT with an odd number of items");
                            var d = new PickleDict();
                            for (int i = 0; i < items.Count; i += 2) d.Set(items[i], items[i + 1]);
                            Push(d);
                            break;
                        }
                    case (byte)'l': { var l = new PickleList(); l.AddRange(PopMark()); Push(l); break; }
                    case (byte)'t': Push(new PickleTuple(PopMark().ToArray())); break;
                    case 0x91: { var l = new PickleList(); l.AddRange(PopMark()); Push(l); break; } // FROZENSET
                    case 0x85: { var a = Pop(); Push(new PickleTuple([a])); break; }
                    case 0x86: { var b = Pop(); var a = Pop(); Push(new PickleTuple([a, b])); break; }
                    case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new PickleTuple([a, b, c])); break; }
                    case (byte)'a': // APPEND
                        {
                            var v = Pop();
                            Count();
                            AsList(Top(), "APPEND").Add(v);
                            break;
                        }
                    case (byte)'e': // APPENDS
                        {
                            var items = PopMark();
                            Count(items.Count);
                            AsList(Top(), "APPENDS").AddRange(items);
                            break;
                        }
                    case 0x90: // ADDITEMS
                        {
                            var items = PopMark();
                            Count(items.Count);
                            AsList(Top(), "ADDITEMS").AddRange(items);
                            break;
                        }
                    case (byte)'s': // SETITEM
                        {
                            var v = Pop();
                            var k = Pop();
                            Count();
                            AsDict(Top(), "SETITEM").Set(k, v);
                            break;
                        }
                    case (byte)'u': // SETITEMS
                        {
                            var items = PopMark();
                            if (items.Count % 2 != 0)
                                throw Fail("corrupt pickle: SETITEMS with an odd number of items");
                            var d = AsDict(Top(), "SETITEMS");
                            Count(items.Count);
                            for (int i = 0; i < items.Count; i += 2) d.Set(items[i], items[i + 1]);
                            break;
                        }
                    case (byte)'q': Put(r.Byte(path)); break;
                    case (byte)'r': Put(BinaryPrimitives.ReadUInt32LittleEndian(r.Take(4, path, "LONG_BINPUT"))); break;
                    case (byte)'p': Put(ParseTextIndex(r.Line(path))); break;
                    case 0x94: Put(memo.Count); break; // MEMOIZE
                    case (byte)'h': Push(Get(r.Byte(path))); break;
                    case (byte)'j': Push(Get(BinaryPrimitives.ReadUInt32LittleEndian(r.Take(4, path, "LONG_BINGET")))); break;
                    case (byte)'g': Push(Get(ParseTextIndex(r.Line(path)))); break;
                    case (byte)'c': // GLOBAL "module\nname\n"
                        {
                            string module = Encoding.UTF8.GetString(r.Line(path));
                            string name = Encoding.UTF8.GetString(r.Line(path));
                            Push(ResolveOrRefuse(module, name));
                            break;
                        }
                    case 0x93: // STACK_GLOBAL
                        {
                            var name = Pop();
                            var module = Pop();
                            if (module is not string m || name is not string n)
                                throw Fail("corrupt pickle: STACK_GLOBAL needs two strings (module, name)");
                            Push(ResolveOrRefuse(m, n));
                            break;
                        }
                    case (byte)'R': // REDUCE
                        {
                            var args = Pop();
                            var callable = Pop();
                            Push(Reduce(callable, args, "REDUCE"));
                            break;
                        }
                    case 0x81: // NEWOBJ cls.__new__(cls, *args)
                        {
                            var args = Pop();
                            var cls = Pop();
                            Push(NewObject(cls, args, "NEWOBJ"));
                            break;
                        }
                    case 0x92: // NEWOBJ_EX
                        {
                            Pop(); // kwargs
                            var args = Pop();
                            var cls = Pop();
                            Push(NewObject(cls, args, "NEWOBJ_EX"));
                            break;
                        }
                    case (byte)'o': // OBJ: MARK cls args... OBJ
                        {
                            var items = PopMark();
                            if (items.Count == 0)
                                throw Fail("corrupt pickle: OBJ without a class");
                            Push(NewObject(items[0], new PickleTuple(items.Skip(1).ToArray()), "OBJ"));
                            break;
                        }
                    case (byte)'i': // INST module\nname\n, args from MARK
                        {
                            string module = Encoding.UTF8.GetString(r.Line(path));
                            string name = Encoding.UTF8.GetString(r.Line(path));
                            var cls = ResolveOrRefuse(module, name);
                            var items = PopMark();
                            Push(NewObject(cls, new PickleTuple(items.ToArray()), "INST"));
                            break;
                        }
                    case (byte)'b': // BUILD
                        {
                            var state = Pop();
                            Build(Top(), state);
                            break;
                        }
                    case (byte)'Q': // BINPERSID
                        Push(PersistentLoad(Pop()));
                        break;
                    case (byte)'P': // PERSID (text ids are not torch storages)
                        throw Fail("refused pickle: it uses a text persistent id (PERSID); torch checkpoints use BINPERSID storage ids");
                    case 0x82 or 0x83 or 0x84:
                        throw Fail("refused pickle: it uses the copyreg extension registry (EXT1/2/4), which checkpoints never need");
                    case 0x97 or 0x98:
                        throw Fail("refused pickle: it uses out-of-band buffers (protocol 5 NEXT_BUFFER/READONLY_BUFFER), which checkpoints never need");
                    default:
                        throw Fail($"corrupt pickle: unknown opcode 0x{op:x2} at offset {r.Pos - 1} (not a pickle, or a damaged one)");
                }
            }
        }

        TorchStorageRef PersistentLoad(object? id)
        {
            if (id is not PickleTuple { Count: >= 5 } t || t[0] is not "storage")
                throw Fail($"refused pickle: a persistent id that is not a torch storage ({Describe(id)})");
            if (t[1] is not PickleGlobal { Kind: GlobalKind.Storage } st)
                throw Fail($"corrupt pickle: storage persistent id names {Describe(t[1])} instead of a torch storage type");
            if (t[2] is not string key || t[3] is not string location || t[4] is not long numel || numel < 0)
                throw Fail("corrupt pickle: storage persistent id needs (key, location, numel)");
            if (t.Count > 5 && t[5] != null)
                throw Fail("unsupported legacy torch checkpoint: it stores storage views (view_metadata); re-save it with torch >= 1.6 or as .safetensors");
            return storages(key, st.StorageType, numel, location);
        }

        long ReadLength8(ref Reader r)
        {
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(r.Take(8, path, "8-byte length"));
            if (n > int.MaxValue)
                throw Fail($"corrupt pickle: a length of {n} bytes is larger than the whole pickle");
            return (long)n;
        }

        PickleGlobal ResolveOrRefuse(string module, string name) =>
            Resolve(module, name) ?? throw Fail(
                $"refused to load: the pickle references the global '{module}.{name}', which is not on the allowlist of " +
                "plain checkpoint data (tensors, containers, numbers, strings). Nothing was executed. A checkpoint that needs it " +
                "may be malicious; if you trust its source, convert it to .safetensors with PyTorch and load that instead.");

        PickleList AsList(object? o, string op) => o as PickleList
            ?? throw Fail($"corrupt pickle: {op} on a {Describe(o)}, not a list");

        PickleDict AsDict(object? o, string op) => o as PickleDict
            ?? throw Fail($"corrupt pickle: {op} on a {Describe(o)}, not a dict");

        static string Describe(object? o) => o switch
        {
            null => "None",
            PickleGlobal g => $"global '{g.FullName}'",
            PickleObject p => $"'{p.ClassName}' object",
            _ => o.GetType().Name,
        };

        PickleTuple ArgsTuple(object? args, string what) => args as PickleTuple
            ?? throw Fail($"corrupt pickle: the arguments of {what} are a {Describe(args)}, not a tuple");

        object? Reduce(object? callable, object? argsObj, string op)
        {
            if (callable is not PickleGlobal g)
                throw Fail($"refused to load: {op} would call a {Describe(callable)}, which is not an allowlisted global. Nothing was executed.");
            var args = ArgsTuple(argsObj, g.FullName);
            switch (g.Kind)
            {
                case GlobalKind.RebuildTensor:
                case GlobalKind.RebuildTensorV2:
                    return RebuildTensor(g, args);
                case GlobalKind.RebuildParameter:
                case GlobalKind.RebuildParameterWithState:
                    if (args.Count < 1 || args[0] is not TorchTensorRef t)
                        throw Fail($"corrupt pickle: {g.FullName} needs a tensor as its first argument");
                    return t;
                case GlobalKind.OrderedDict:
                    {
                        var d = new PickleDict();
                        if (args.Count > 0 && args[0] is PickleList pairs)
                            foreach (var p in pairs)
                            {
                                if (p is not PickleTuple { Count: 2 } kv)
                                    throw Fail("corrupt pickle: OrderedDict items must be (key, value) pairs");
                                d.Set(kv[0], kv[1]);
                            }
                        return d;
                    }
                case GlobalKind.Set:
                case GlobalKind.FrozenSet:
                    {
                        var l = new PickleList();
                        if (args.Count > 0 && args[0] is PickleList items) l.AddRange(items);
                        return l;
                    }
                case GlobalKind.TorchSize:
                    return args.Count > 0 && args[0] is PickleTuple dims ? dims : new PickleTuple([]);
                case GlobalKind.CodecsEncode:
                    {
                        if (args.Count < 1 || args[0] is not string s)
                            throw Fail("corrupt pickle: _codecs.encode needs a string");
                        string enc = args.Count > 1 && args[1] is string e ? e : "utf-8";
                        return enc.Replace('_', '-').ToLowerInvariant() switch
                        {
                            "latin1" or "latin-1" or "iso-8859-1" => LatinBytes(s),
                            "utf-8" or "utf8" => Encoding.UTF8.GetBytes(s),
                            _ => throw Fail($"refused pickle: _codecs.encode with encoding '{enc}' (only latin1 and utf-8 are accepted)"),
                        };
                    }
                case GlobalKind.NumpyDType:
                    {
                        if (args.Count < 1 || args[0] is not string code)
                            throw Fail("corrupt pickle: numpy.dtype needs a type code string");
                        return new NumpyDType(code);
                    }
                case GlobalKind.NumpyScalar:
                    return NumpyScalar(args);
                case GlobalKind.Placeholder:
                    return new PickleObject(g.FullName) { Arguments = args };
                case GlobalKind.Storage:
                    throw Fail($"refused pickle: {g.FullName} is only accepted as a storage type in a persistent id, not called");
                default:
                    throw Fail($"refused pickle: {g.FullName} cannot be called");
            }
        }

        object? NewObject(object? cls, object? argsObj, string op)
        {
            if (cls is PickleGlobal { Kind: GlobalKind.Placeholder } g)
                return new PickleObject(g.FullName) { Arguments = argsObj as PickleTuple };
            if (cls is PickleGlobal { Kind: GlobalKind.OrderedDict })
                return new PickleDict();
            if (cls is PickleGlobal { Kind: GlobalKind.Set or GlobalKind.FrozenSet })
                return new PickleList();
            throw Fail($"refused to load: {op} would construct a {Describe(cls)}, which is not an allowlisted class. Nothing was executed.");
        }

        void Build(object? target, object? state)
        {
            switch (target)
            {
                case PickleObject p:
                    p.State = state;
                    return;
                case PickleDict d: // OrderedDict attributes (torch's _metadata)
                    d.Attributes = state;
                    return;
                case NumpyDType dt:
                    if (state is PickleTuple { Count: > 1 } st && st[1] is string order && order.Length == 1)
                        dt.ByteOrder = order[0];
                    return;
                case TorchTensorRef:
                    return; // _rebuild_parameter_with_state's python attributes: ignored
                default:
                    throw Fail($"refused to load: BUILD (setting object state) on a {Describe(target)} is not allowed. Nothing was executed.");
            }
        }

        byte[] LatinBytes(string s)
        {
            var b = new byte[s.Length];
            for (int i = 0; i < s.Length; i++)
            {
                if (s[i] > 0xff) throw Fail("corrupt pickle: _codecs.encode(latin1) of a non-latin-1 string");
                b[i] = (byte)s[i];
            }
            return b;
        }

        object NumpyScalar(PickleTuple args)
        {
            if (args.Count >= 2 && args[0] is NumpyDType dt && args[1] is byte[] bytes)
            {
                bool big = dt.ByteOrder == '>';
                Span<byte> b = bytes.Length <= 16 ? stackalloc byte[bytes.Length] : new byte[bytes.Length];
                bytes.CopyTo(b);
                if (big) b.Reverse();
                object? v = (dt.Code, b.Length) switch
                {
                    ("i8" or "<i8" or "int64", 8) => BinaryPrimitives.ReadInt64LittleEndian(b),
                    ("i4" or "<i4" or "int32", 4) => (long)BinaryPrimitives.ReadInt32LittleEndian(b),
                    ("u8" or "uint64", 8) => (long)BinaryPrimitives.ReadUInt64LittleEndian(b),
                    ("u4" or "uint32", 4) => (long)BinaryPrimitives.ReadUInt32LittleEndian(b),
                    ("f8" or "<f8" or "float64", 8) => BinaryPrimitives.ReadDoubleLittleEndian(b),
                    ("f4" or "<f4" or "float32", 4) => (double)BinaryPrimitives.ReadSingleLittleEndian(b),
                    ("b1" or "bool", 1) => b[0] != 0,
                    _ => null,
                };
                if (v != null) return v;
            }
            return new PickleObject("numpy.core.multiarray.scalar") { Arguments = args };
        }

        TorchTensorRef RebuildTensor(PickleGlobal g, PickleTuple a)
        {
            if (a.Count < 4)
                throw Fail($"corrupt pickle: {g.FullName} needs (storage, offset, size, stride), got {a.Count} arguments");
            if (a[0] is not TorchStorageRef storage)
                throw Fail($"corrupt pickle: {g.FullName}'s first argument is a {Describe(a[0])}, not a storage");
            if (a[1] is not long offset || offset < 0)
                throw Fail($"corrupt pickle: {g.FullName} has an invalid storage offset");
            var shape = Dims(a[2], "size");
            var stride = Dims(a[3], "stride");
            if (shape.Length != stride.Length)
                throw Fail($"corrupt pickle: tensor size has {shape.Length} dimensions but stride has {stride.Length}");
            bool requiresGrad = a.Count > 4 && a[4] is true;
            CheckInside(storage, offset, shape, stride);
            return new TorchTensorRef(storage, offset, shape, stride, requiresGrad);
        }

        long[] Dims(object? o, string what)
        {
            if (o is not PickleTuple t)
                throw Fail($"corrupt pickle: tensor {what} is a {Describe(o)}, not a tuple");
            if (t.Count > MaxTensorDims)
                throw Fail($"corrupt pickle: tensor {what} has {t.Count} dimensions (at most {MaxTensorDims})");
            var r = new long[t.Count];
            for (int i = 0; i < r.Length; i++)
                r[i] = t[i] is long v && v >= 0 ? v : throw Fail($"corrupt pickle: tensor {what} has an invalid entry {t[i]}");
            return r;
        }

        void CheckInside(TorchStorageRef s, long offset, long[] shape, long[] stride)
        {
            if (shape.Any(d => d == 0)) return;
            long last = offset;
            for (int i = 0; i < shape.Length; i++)
            {
                long step;
                try { step = checked((shape[i] - 1) * stride[i]); last = checked(last + step); }
                catch (OverflowException) { throw Fail("corrupt pickle: tensor size/stride overflow"); }
            }
            if (last >= s.NumElements)
                throw Fail($"corrupt pickle: a tensor of size [{string.Join(", ", shape)}], stride [{string.Join(", ", stride)}] at offset {offset} reaches element {last} of storage '{s.Key}', which has only {s.NumElements} elements");
        }

        object DecodeLong(ReadOnlySpan<byte> b)
        {
            if (b.Length == 0) return 0L;
            if (b.Length <= 8)
            {
                Span<byte> buf = stackalloc byte[8];
                byte fill = (b[^1] & 0x80) != 0 ? (byte)0xff : (byte)0;
                buf.Fill(fill);
                b.CopyTo(buf);
                return BinaryPrimitives.ReadInt64LittleEndian(buf);
            }
            var big = new BigInteger(b, isUnsigned: false, isBigEndian: false);
            return big >= long.MinValue && big <= long.MaxValue ? (long)big : big;
        }

        static ReadOnlySpan<byte> TrimL(ReadOnlySpan<byte> s) => s.Length > 0 && s[^1] == (byte)'L' ? s[..^1] : s;

        object ParseTextInt(ReadOnlySpan<byte> s)
        {
            if (s.SequenceEqual("00"u8)) return false;
            if (s.SequenceEqual("01"u8)) return true;
            if (s.Length == 0 || s.Length > MaxTextNumberLength)
                throw Fail("corrupt pickle: invalid INT/LONG text argument");
            var text = Encoding.ASCII.GetString(s);
            if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v)) return v;
            if (BigInteger.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var big)) return big;
            throw Fail("corrupt pickle: INT/LONG text argument is not a number");
        }

        long ParseTextIndex(ReadOnlySpan<byte> s) =>
            s.Length is > 0 and < 20 && long.TryParse(Encoding.ASCII.GetString(s), NumberStyles.None, CultureInfo.InvariantCulture, out long v)
                ? v
                : throw Fail("corrupt pickle: invalid memo index");

        string Utf8(ReadOnlySpan<byte> b)
        {
            try { return new UTF8Encoding(false, true).GetString(b); }
            catch (DecoderFallbackException) { throw Fail("corrupt pickle: a string is not valid UTF-8"); }
        }

        string RawUnicodeEscape(ReadOnlySpan<byte> b)
        {
            var sb = new StringBuilder(b.Length);
            for (int i = 0; i < b.Length; i++)
            {
                if (b[i] == (byte)'\\' && i + 1 < b.Length && (b[i + 1] == (byte)'u' || b[i + 1] == (byte)'U'))
                {
                    int n = b[i + 1] == (byte)'u' ? 4 : 8;
                    if (i + 2 + n > b.Length || !uint.TryParse(Encoding.ASCII.GetString(b.Slice(i + 2, n)), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint cp) || cp > 0x10FFFF || cp is >= 0xD800 and <= 0xDFFF)
                        throw Fail("corrupt pickle: invalid escape in a UNICODE argument");
                    sb.Append(char.ConvertFromUtf32((int)cp));
                    i += 1 + n;
                }
                else sb.Append((char)b[i]);
            }
            return sb.ToString();
        }

        string ParseQuotedString(ReadOnlySpan<byte> b)
        {
            if (b.Length < 2 || b[0] != b[^1] || (b[0] != (byte)'\'' && b[0] != (byte)'"'))
                throw Fail("corrupt pickle: STRING argument is not quoted");
            var inner = b[1..^1];
            if (inner.IndexOf((byte)'\\') >= 0)
                throw Fail("unsupported pickle: protocol-0 STRING with escapes (torch.save never writes protocol 0)");
            return Encoding.Latin1.GetString(inner);
        }
    }
}
