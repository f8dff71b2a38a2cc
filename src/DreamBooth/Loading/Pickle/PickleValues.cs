using static TorchSharp.torch;

namespace DreamBooth.Loading.Pickle;

// The plain data that SafeUnpickler builds. Nothing here can run code: a pickle can only ever
// produce these types (plus null, bool, long, BigInteger, double, string and byte[]).

/// <summary>A Python tuple. Reference equality (tuples are rarely used as keys in checkpoints).</summary>
public sealed class PickleTuple(object?[] items) : IReadOnlyList<object?>
{
    readonly object?[] items = items;

    public object? this[int index] => items[index];

    public int Count => items.Length;

    public IEnumerator<object?> GetEnumerator() => ((IEnumerable<object?>)items).GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => items.GetEnumerator();
}

/// <summary>A Python list (also used for sets).</summary>
public sealed class PickleList : List<object?>
{
}

/// <summary>
/// A Python dict or collections.OrderedDict, in insertion order (keys are strings, numbers or
/// <see cref="PickleNone.Instance"/> for a None key). Attributes set on an OrderedDict by BUILD
/// (torch's <c>_metadata</c>) are kept in <see cref="Attributes"/> and otherwise ignored.
/// </summary>
public sealed class PickleDict
{
    readonly Dictionary<object, object?> map = new();
    readonly List<object> order = new();

    public int Count => map.Count;

    public IEnumerable<object> Keys => order;

    public object? Attributes { get; internal set; }

    public bool TryGetValue(object key, out object? value) => map.TryGetValue(key, out value);

    public object? this[object key] => map[key];

    public IEnumerable<KeyValuePair<object, object?>> Items => order.Select(k => new KeyValuePair<object, object?>(k, map[k]));

    internal void Set(object? key, object? value)
    {
        var k = key ?? PickleNone.Instance;
        if (!map.ContainsKey(k)) order.Add(k);
        map[k] = value;
    }
}

/// <summary>Stands for Python's None where null cannot be used (a dictionary key).</summary>
public sealed class PickleNone
{
    public static readonly PickleNone Instance = new();

    PickleNone() { }

    public override string ToString() => "None";
}

/// <summary>
/// An inert stand-in for an object of a known, harmless class that checkpoints carry besides tensors
/// (pytorch_lightning's ModelCheckpoint callback, numpy arrays, torch dtypes ...). Its constructor
/// arguments and state are recorded as plain data; nothing of the class is ever executed.
/// </summary>
public sealed class PickleObject(string className)
{
    public string ClassName { get; } = className;

    public PickleTuple? Arguments { get; internal set; }

    public object? State { get; internal set; }

    public override string ToString() => $"<{ClassName}>";
}

internal enum GlobalKind
{
    RebuildTensor, RebuildTensorV2, RebuildParameter, RebuildParameterWithState, Storage,
    OrderedDict, Set, FrozenSet, CodecsEncode, NumpyScalar, NumpyDType, TorchSize, Placeholder,
}

/// <summary>
/// A reference to an allowlisted Python global (module.name), as GLOBAL/STACK_GLOBAL produce it.
/// Only <see cref="SafeUnpickler"/> interprets it, by building plain data; nothing is imported or run.
/// </summary>
public sealed class PickleGlobal
{
    internal PickleGlobal(string fullName, GlobalKind kind, ScalarType storageType = ScalarType.Float32)
    {
        FullName = fullName;
        Kind = kind;
        StorageType = storageType;
    }

    /// <summary>"module.name".</summary>
    public string FullName { get; }

    internal GlobalKind Kind { get; }

    internal ScalarType StorageType { get; }

    public override string ToString() => FullName;
}

/// <summary>A numpy dtype as pickled by numpy (<c>numpy.dtype('i8', False, True)</c> plus BUILD state).</summary>
public sealed class NumpyDType(string code)
{
    public string Code { get; } = code;

    /// <summary>'&lt;' little endian, '&gt;' big endian, '|' not applicable, '=' native.</summary>
    public char ByteOrder { get; internal set; } = '=';

    public override string ToString() => $"numpy.dtype('{Code}')";
}

/// <summary>One storage of a torch zip checkpoint: the file <c>data/&lt;Key&gt;</c> holding <see cref="NumElements"/> elements.</summary>
public sealed class TorchStorageRef(string key, ScalarType dtype, long numElements, string location)
{
    public string Key { get; } = key;

    public ScalarType DType { get; } = dtype;

    public long NumElements { get; } = numElements;

    public string Location { get; } = location;
}

/// <summary>
/// A tensor as torch._utils._rebuild_tensor_v2 describes it: a strided view (<see cref="Offset"/>,
/// <see cref="Shape"/>, <see cref="Stride"/>, in elements) of a storage that other tensors may share.
/// Validated on creation: every element it addresses lies inside the storage.
/// </summary>
public sealed class TorchTensorRef(TorchStorageRef storage, long offset, long[] shape, long[] stride, bool requiresGrad)
{
    public TorchStorageRef Storage { get; } = storage;

    public long Offset { get; } = offset;

    public long[] Shape { get; } = shape;

    public long[] Stride { get; } = stride;

    public bool RequiresGrad { get; } = requiresGrad;

    public ScalarType DType => Storage.DType;

    public override string ToString() => $"tensor({DType}, [{string.Join(", ", Shape)}])";
}
