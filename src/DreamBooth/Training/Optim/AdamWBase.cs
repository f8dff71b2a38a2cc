using System.Globalization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Training.Optim;

/// <summary>
/// Shared machinery of <see cref="AdamW"/> and <see cref="AdamW8bit"/>: param groups, per-parameter step
/// counters (a parameter skipped for lack of a gradient does not advance, as in PyTorch), zero_grad, and a
/// strict state dict keyed <c>state.{group}.{index}.{name}</c> plus <c>step</c> and <c>group.{g}.lr</c>.
/// </summary>
public abstract class AdamWBase : ITrainingOptimizer
{
    private readonly ParamState?[][] _state;
    private bool _disposed;

    /// <summary>Per-parameter optimizer state.</summary>
    protected abstract class ParamState : IDisposable
    {
        /// <summary>Number of updates this parameter has received.</summary>
        public long Step;

        /// <summary>Adds this state's tensors (copies) under <paramref name="prefix"/> (e.g. "state.0.3.").</summary>
        public abstract void Save(Dictionary<string, Tensor> into, string prefix);

        /// <summary>Bytes held by the state tensors.</summary>
        public abstract long Bytes { get; }

        /// <inheritdoc />
        public abstract void Dispose();
    }

    /// <summary>Validates options and groups (no parameter may appear in two groups).</summary>
    protected AdamWBase(IEnumerable<ParameterGroup> groups, AdamWOptions? options)
    {
        ArgumentNullException.ThrowIfNull(groups);
        Options = options ?? new AdamWOptions();
        Options.Validate();
        Groups = groups.ToArray();
        if (Groups.Count == 0)
            throw new ArgumentException("An optimizer needs at least one ParameterGroup (e.g. the UNet's trainable parameters).", nameof(groups));
        var seen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        foreach (var g in Groups)
            foreach (var p in g.Parameters)
                if (!seen.Add(p))
                    throw new ArgumentException($"A parameter of group '{g.Name}' already belongs to another group; each parameter may be optimised once.", nameof(groups));
        _state = Groups.Select(g => new ParamState?[g.Parameters.Count]).ToArray();
    }

    /// <summary>The AdamW hyper-parameters.</summary>
    public AdamWOptions Options { get; }

    /// <inheritdoc />
    public IReadOnlyList<ParameterGroup> Groups { get; }

    /// <inheritdoc />
    public long StepCount { get; private set; }

    /// <inheritdoc />
    public void SetLearningRateMultiplier(double multiplier)
    {
        if (!(multiplier >= 0) || double.IsInfinity(multiplier))
            throw new ArgumentOutOfRangeException(nameof(multiplier), multiplier, "The learning-rate multiplier must be a finite number >= 0 (an LrSchedule value).");
        foreach (var g in Groups) g.LearningRate = g.BaseLearningRate * multiplier;
    }

    /// <inheritdoc />
    public void ZeroGrad()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        foreach (var g in Groups)
            foreach (var p in g.Parameters)
            {
                var grad = p.grad;
                if (grad is null) continue;
                p.grad = null;
                grad.Dispose();
            }
    }

    /// <inheritdoc />
    public void Step()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var noGrad = torch.no_grad();
        for (int gi = 0; gi < Groups.Count; gi++)
        {
            var group = Groups[gi];
            double wd = group.WeightDecay ?? Options.WeightDecay;
            for (int pi = 0; pi < group.Parameters.Count; pi++)
            {
                var p = group.Parameters[pi];
                using var scope = torch.NewDisposeScope();
                var grad = p.grad;
                if (grad is null) continue;
                if (grad.is_sparse)
                    throw new NotSupportedException($"Group '{group.Name}' parameter {pi}: sparse gradients are not supported by AdamW.");
                var st = _state[gi][pi];
                if (st is null)
                {
                    st = CreateState(p); // detached from the step scope: lives as long as the optimizer
                    _state[gi][pi] = st;
                }
                st.Step++;
                CurrentRoundingSeed = Options.RoundingSeed * 1_000_003L + (StepCount + 1) * 7919L + gi * 104_729L + pi;
                Update(p, grad, st, group.LearningRate, wd);
            }
        }
        StepCount++;
    }

    /// <summary>Creates zero state for <paramref name="p"/>; tensors must be detached from any dispose scope.</summary>
    /// <summary>Seed for stochastic rounding of the parameter being updated now (step, group and index folded in).</summary>
    protected long CurrentRoundingSeed { get; private set; }

    protected abstract ParamState CreateState(Parameter p);

    /// <summary>Elements updated at once: a large parameter is updated in slices so the float32 temporaries of one
    /// update (weight, gradient, moments, rounding noise) stay a few MB instead of ~1 GB for SD's largest conv.</summary>
    public const long ChunkElements = 1L << 20;

    /// <summary>
    /// Runs <paramref name="body"/>(start, length, index) over consecutive slices of <paramref name="numel"/> elements,
    /// each in its own dispose scope. Slice starts are multiples of <paramref name="align"/> (a quantisation block size)
    /// and of <see cref="ChunkElements"/> rounded to it, so block-wise results do not depend on the slicing.
    /// </summary>
    protected static void ForEachChunk(long numel, int align, Action<long, long, int> body)
    {
        long chunk = Math.Max(align, ChunkElements / align * align);
        int k = 0;
        for (long a = 0; a < numel; a += chunk, k++)
        {
            using var scope = torch.NewDisposeScope();
            body(a, Math.Min(chunk, numel - a), k);
        }
    }

    /// <summary>The stochastic-rounding seed of slice <paramref name="chunk"/> of the current parameter (splitmix64 of both).</summary>
    protected long ChunkRoundingSeed(int chunk)
    {
        if (chunk == 0) return CurrentRoundingSeed;
        unchecked
        {
            ulong z = (ulong)CurrentRoundingSeed + 0x9E3779B97F4A7C15UL * (ulong)chunk;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return (long)((z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFFUL);
        }
    }

    /// <summary>One AdamW update of <paramref name="p"/> (grad mode is off; <c>state.Step</c> already advanced).</summary>
    protected abstract void Update(Parameter p, Tensor grad, ParamState state, double lr, double weightDecay);

    /// <summary>Reads this parameter's state from <paramref name="dict"/> under <paramref name="prefix"/>, recording consumed keys.</summary>
    protected abstract ParamState LoadState(Parameter p, string where, string prefix, IReadOnlyDictionary<string, Tensor> dict, HashSet<string> consumed);

    /// <inheritdoc />
    public Dictionary<string, Tensor> StateDict()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var d = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using var scope = torch.NewDisposeScope(); // temporaries only: every returned tensor is detached from it
        using var noGrad = torch.no_grad();
        d["step"] = torch.tensor(StepCount, ScalarType.Int64).DetachFromDisposeScope();
        for (int gi = 0; gi < Groups.Count; gi++)
        {
            d[$"group.{gi}.lr"] = torch.tensor(Groups[gi].LearningRate, ScalarType.Float64).DetachFromDisposeScope();
            for (int pi = 0; pi < Groups[gi].Parameters.Count; pi++)
            {
                var st = _state[gi][pi];
                if (st is null) continue;
                string prefix = $"state.{gi}.{pi}.";
                d[prefix + "step"] = torch.tensor(st.Step, ScalarType.Int64).DetachFromDisposeScope();
                st.Save(d, prefix);
            }
        }
        return d;
    }

    /// <inheritdoc />
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> state)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(state);
        var consumed = new HashSet<string>(StringComparer.Ordinal);
        using var scope = torch.NewDisposeScope(); // temporaries only: loaded state tensors are detached from it
        long step = ReadInt64(state, "step", "optimizer state", consumed);
        var lrs = new double[Groups.Count];
        var loaded = Groups.Select(g => new ParamState?[g.Parameters.Count]).ToArray();
        try
        {
            using var noGrad = torch.no_grad();
            for (int gi = 0; gi < Groups.Count; gi++)
            {
                string lrKey = $"group.{gi}.lr";
                if (!state.TryGetValue(lrKey, out var lrT))
                    throw new InvalidDataException($"Optimizer state has no '{lrKey}': it was saved with fewer param groups than this optimizer has ({Groups.Count}).");
                lrs[gi] = lrT.to(ScalarType.Float64).cpu().item<double>();
                consumed.Add(lrKey);
                for (int pi = 0; pi < Groups[gi].Parameters.Count; pi++)
                {
                    string prefix = $"state.{gi}.{pi}.";
                    if (!state.ContainsKey(prefix + "step")) continue; // never stepped: no state, like PyTorch
                    string where = $"optimizer state of group '{Groups[gi].Name}' parameter {pi}";
                    long pstep = ReadInt64(state, prefix + "step", where, consumed);
                    var st = LoadState(Groups[gi].Parameters[pi], where, prefix, state, consumed);
                    st.Step = pstep;
                    loaded[gi][pi] = st;
                }
            }
            var unexpected = state.Keys.Where(k => !consumed.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
            if (unexpected.Count > 0)
                throw new InvalidDataException(
                    $"Optimizer state has {unexpected.Count} unexpected key(s): {string.Join(", ", unexpected.Take(10))}" +
                    $"{(unexpected.Count > 10 ? ", ..." : "")}. It was saved for a different parameter layout or optimizer type ({GetType().Name} expected).");
        }
        catch
        {
            foreach (var row in loaded) foreach (var s in row) s?.Dispose();
            throw;
        }
        for (int gi = 0; gi < Groups.Count; gi++)
        {
            Groups[gi].LearningRate = lrs[gi];
            for (int pi = 0; pi < Groups[gi].Parameters.Count; pi++)
            {
                _state[gi][pi]?.Dispose();
                _state[gi][pi] = loaded[gi][pi];
            }
        }
        StepCount = step;
    }

    /// <inheritdoc />
    public virtual long StateBytes => _state.SelectMany(r => r).Sum(s => s?.Bytes ?? 0);

    /// <summary>Copies a saved tensor onto the parameter's device after checking its shape and dtype.</summary>
    protected static Tensor ReadTensor(IReadOnlyDictionary<string, Tensor> dict, string key, string where,
        long[] shape, ScalarType dtype, Device device, HashSet<string> consumed)
    {
        if (!dict.TryGetValue(key, out var t))
            throw new InvalidDataException($"{where}: key '{key}' is missing; the state was saved by a different optimizer or settings.");
        if (!t.shape.SequenceEqual(shape))
            throw new InvalidDataException($"{where}: '{key}' has shape [{string.Join(", ", t.shape)}] but [{string.Join(", ", shape)}] is expected; the checkpoint belongs to a different model.");
        if (t.dtype != dtype)
            throw new InvalidDataException($"{where}: '{key}' has dtype {t.dtype} but {dtype} is expected; the checkpoint was saved with another precision or optimizer.");
        consumed.Add(key);
        return t.detach().to(device).clone().DetachFromDisposeScope();
    }

    private static long ReadInt64(IReadOnlyDictionary<string, Tensor> dict, string key, string where, HashSet<string> consumed)
    {
        if (!dict.TryGetValue(key, out var t))
            throw new InvalidDataException($"{where}: key '{key}' is missing; this is not a state dict of {nameof(AdamW)}/{nameof(AdamW8bit)}.");
        if (t.numel() != 1 || t.dtype != ScalarType.Int64)
            throw new InvalidDataException($"{where}: '{key}' must be a single int64 value, found dtype {t.dtype} with {t.numel()} elements.");
        long v = t.cpu().item<long>();
        if (v < 0)
            throw new InvalidDataException($"{where}: '{key}' is negative ({v.ToString(CultureInfo.InvariantCulture)}).");
        consumed.Add(key);
        return v;
    }

    /// <summary>Bytes of a tensor's elements.</summary>
    protected static long BytesOf(Tensor? t) => t is null ? 0 : t.numel() * t.ElementSize;

    /// <summary>Releases the state tensors.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the state tensors.</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (_disposed) return;
        _disposed = true;
        if (!disposing) return;
        foreach (var row in _state)
            for (int i = 0; i < row.Length; i++) { row[i]?.Dispose(); row[i] = null; }
    }
}
