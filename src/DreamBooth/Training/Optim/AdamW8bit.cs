using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Training.Optim;

/// <summary>
/// AdamW with 8-bit block-wise quantised moments, after bitsandbytes' <c>AdamW8bit</c> (Dettmers et al. 2022,
/// "8-bit Optimizers via Block-wise Quantization"). The first moment uses the signed dynamic map, the second
/// the unsigned one; each block of <see cref="Quantization8bitOptions.BlockSize"/> elements has an fp32 absmax.
/// Every step dequantises to fp32, applies the same AdamW update as <see cref="AdamW"/> in fp32 (the parameter
/// update uses the fresh fp32 moments), then requantises the moments with a new absmax. Parameters smaller than
/// <see cref="Quantization8bitOptions.MinQuantizedElements"/> keep fp32 state, as bitsandbytes does.
/// State is ~2 bytes per element instead of 8 for fp32 AdamW.
/// </summary>
public sealed class AdamW8bit : AdamWBase
{
    private readonly Dictionary<string, (Tensor Signed, Tensor SignedMid, Tensor Unsigned, Tensor UnsignedMid)> _maps = new(StringComparer.Ordinal);

    private sealed class FullState : ParamState
    {
        public required Tensor ExpAvg;
        public required Tensor ExpAvgSq;
        public override void Save(Dictionary<string, Tensor> into, string prefix)
        {
            into[prefix + "exp_avg"] = ExpAvg.detach().clone().DetachFromDisposeScope();
            into[prefix + "exp_avg_sq"] = ExpAvgSq.detach().clone().DetachFromDisposeScope();
        }
        public override long Bytes => BytesOf(ExpAvg) + BytesOf(ExpAvgSq);
        public override void Dispose() { ExpAvg.Dispose(); ExpAvgSq.Dispose(); }
    }

    private sealed class QuantState : ParamState
    {
        public required Tensor ExpAvgQ, ExpAvgAbsmax, ExpAvgSqQ, ExpAvgSqAbsmax;
        public override void Save(Dictionary<string, Tensor> into, string prefix)
        {
            into[prefix + "exp_avg.q"] = ExpAvgQ.detach().clone().DetachFromDisposeScope();
            into[prefix + "exp_avg.absmax"] = ExpAvgAbsmax.detach().clone().DetachFromDisposeScope();
            into[prefix + "exp_avg_sq.q"] = ExpAvgSqQ.detach().clone().DetachFromDisposeScope();
            into[prefix + "exp_avg_sq.absmax"] = ExpAvgSqAbsmax.detach().clone().DetachFromDisposeScope();
        }
        public override long Bytes => BytesOf(ExpAvgQ) + BytesOf(ExpAvgAbsmax) + BytesOf(ExpAvgSqQ) + BytesOf(ExpAvgSqAbsmax);
        public override void Dispose() { ExpAvgQ.Dispose(); ExpAvgAbsmax.Dispose(); ExpAvgSqQ.Dispose(); ExpAvgSqAbsmax.Dispose(); }
    }

    /// <summary>Creates the optimizer; both option records are validated.</summary>
    public AdamW8bit(IEnumerable<ParameterGroup> groups, AdamWOptions? options = null, Quantization8bitOptions? quantization = null)
        : base(groups, options)
    {
        Quantization = quantization ?? new Quantization8bitOptions();
        Quantization.Validate();
    }

    /// <summary>Convenience: one group named "params".</summary>
    public AdamW8bit(IEnumerable<Parameter> parameters, double learningRate, AdamWOptions? options = null, Quantization8bitOptions? quantization = null)
        : this(new[] { new ParameterGroup("params", parameters, learningRate) }, options, quantization) { }

    /// <summary>Block size and the fp32 threshold.</summary>
    public Quantization8bitOptions Quantization { get; }

    /// <summary>Whether a parameter of <paramref name="numel"/> elements gets 8-bit state.</summary>
    public bool IsQuantized(long numel) => numel >= Quantization.MinQuantizedElements;

    private (Tensor Signed, Tensor SignedMid, Tensor Unsigned, Tensor UnsignedMid) Maps(Device device)
    {
        string key = device.ToString();
        if (_maps.TryGetValue(key, out var m)) return m;
        using var scope = torch.NewDisposeScope();
        var s = BlockwiseQuantizer.CreateDynamicMap(signed: true).to(device);
        var u = BlockwiseQuantizer.CreateDynamicMap(signed: false).to(device);
        m = (s.DetachFromDisposeScope(), BlockwiseQuantizer.Midpoints(s).DetachFromDisposeScope(),
             u.DetachFromDisposeScope(), BlockwiseQuantizer.Midpoints(u).DetachFromDisposeScope());
        _maps[key] = m;
        return m;
    }

    /// <inheritdoc />
    protected override ParamState CreateState(Parameter p)
    {
        long n = p.numel();
        if (!IsQuantized(n))
            return new FullState
            {
                ExpAvg = torch.zeros(p.shape, ScalarType.Float32, p.device).DetachFromDisposeScope(),
                ExpAvgSq = torch.zeros(p.shape, ScalarType.Float32, p.device).DetachFromDisposeScope(),
            };
        Maps(p.device);
        long nb = BlockwiseQuantizer.BlockCount(n, Quantization.BlockSize);
        // All-zero moments: absmax 0 dequantises to 0 whatever the code index is.
        return new QuantState
        {
            ExpAvgQ = torch.zeros(n, ScalarType.Byte, p.device).DetachFromDisposeScope(),
            ExpAvgAbsmax = torch.zeros(nb, ScalarType.Float32, p.device).DetachFromDisposeScope(),
            ExpAvgSqQ = torch.zeros(n, ScalarType.Byte, p.device).DetachFromDisposeScope(),
            ExpAvgSqAbsmax = torch.zeros(nb, ScalarType.Float32, p.device).DetachFromDisposeScope(),
        };
    }

    /// <inheritdoc />
    protected override void Update(Parameter p, Tensor grad, ParamState state, double lr, double weightDecay)
    {
        if (state is FullState f)
        {
            // small parameters (below MinQuantizedElements): plain fp32 moments, one slice
            var g32 = grad.dtype == ScalarType.Float32 ? grad : grad.to(ScalarType.Float32);
            var p32 = p.dtype == ScalarType.Float32 ? (Tensor)p : p.to(ScalarType.Float32);
            AdamW.ApplyAdamW(p32, g32, f.ExpAvg, f.ExpAvgSq, f.Step, lr, weightDecay, Options.Beta1, Options.Beta2, Options.Eps);
            if (!ReferenceEquals(p32, p)) StochasticRounding.CopyInto(p, p32, CurrentRoundingSeed);
            return;
        }
        var q = (QuantState)state;
        var maps = Maps(p.device);
        int bs = Quantization.BlockSize;
        var pf = p.view(-1);
        var gf = grad.reshape(-1);
        // slices start on block boundaries, so each block's absmax and codes are what a whole-tensor pass would give
        ForEachChunk(pf.numel(), bs, (a, len, k) =>
        {
            long b0 = a / bs, nb = BlockwiseQuantizer.BlockCount(len, bs);
            var mq = q.ExpAvgQ.narrow(0, a, len);
            var ma = q.ExpAvgAbsmax.narrow(0, b0, nb);
            var vq = q.ExpAvgSqQ.narrow(0, a, len);
            var va = q.ExpAvgSqAbsmax.narrow(0, b0, nb);
            var m = BlockwiseQuantizer.Dequantize(mq, ma, maps.Signed, bs, [len]);
            var v = BlockwiseQuantizer.Dequantize(vq, va, maps.Unsigned, bs, [len]);
            var pv = pf.narrow(0, a, len);
            var p32 = pv.dtype == ScalarType.Float32 ? pv : pv.to(ScalarType.Float32);
            var gv = gf.narrow(0, a, len);
            AdamW.ApplyAdamW(p32, gv.dtype == ScalarType.Float32 ? gv : gv.to(ScalarType.Float32), m, v, q.Step, lr, weightDecay, Options.Beta1, Options.Beta2, Options.Eps);
            BlockwiseQuantizer.Quantize(m, maps.SignedMid, bs, mq, ma);
            BlockwiseQuantizer.Quantize(v, maps.UnsignedMid, bs, vq, va);
            if (!ReferenceEquals(p32, pv)) StochasticRounding.CopyInto(pv, p32, ChunkRoundingSeed(k));
        });
    }

    /// <inheritdoc />
    protected override ParamState LoadState(Parameter p, string where, string prefix, IReadOnlyDictionary<string, Tensor> dict, HashSet<string> consumed)
    {
        long n = p.numel();
        var loaded = new List<Tensor>();
        try
        {
            if (!IsQuantized(n))
            {
                loaded.Add(ReadTensor(dict, prefix + "exp_avg", where, p.shape, ScalarType.Float32, p.device, consumed));
                loaded.Add(ReadTensor(dict, prefix + "exp_avg_sq", where, p.shape, ScalarType.Float32, p.device, consumed));
                return new FullState { ExpAvg = loaded[0], ExpAvgSq = loaded[1] };
            }
            Maps(p.device);
            long nb = BlockwiseQuantizer.BlockCount(n, Quantization.BlockSize);
            loaded.Add(ReadTensor(dict, prefix + "exp_avg.q", where, new[] { n }, ScalarType.Byte, p.device, consumed));
            loaded.Add(ReadTensor(dict, prefix + "exp_avg.absmax", where, new[] { nb }, ScalarType.Float32, p.device, consumed));
            loaded.Add(ReadTensor(dict, prefix + "exp_avg_sq.q", where, new[] { n }, ScalarType.Byte, p.device, consumed));
            loaded.Add(ReadTensor(dict, prefix + "exp_avg_sq.absmax", where, new[] { nb }, ScalarType.Float32, p.device, consumed));
            return new QuantState { ExpAvgQ = loaded[0], ExpAvgAbsmax = loaded[1], ExpAvgSqQ = loaded[2], ExpAvgSqAbsmax = loaded[3] };
        }
        catch
        {
            foreach (var t in loaded) t.Dispose();
            throw;
        }
    }

    /// <summary>State bytes including the two 256-entry code maps and their midpoints.</summary>
    public override long StateBytes => base.StateBytes + _maps.Values.Sum(m => BytesOf(m.Signed) + BytesOf(m.SignedMid) + BytesOf(m.Unsigned) + BytesOf(m.UnsignedMid));

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var m in _maps.Values) { m.Signed.Dispose(); m.SignedMid.Dispose(); m.Unsigned.Dispose(); m.UnsignedMid.Dispose(); }
            _maps.Clear();
        }
        base.Dispose(disposing);
    }
}
