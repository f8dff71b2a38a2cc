using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Training.Optim;

/// <summary>
/// Block-wise 8-bit quantisation with a dynamic (tree) code, after Dettmers et al. 2022, "8-bit Optimizers
/// via Block-wise Quantization", and bitsandbytes' <c>create_dynamic_map</c> / <c>quantize_blockwise</c>:
/// a tensor is cut into blocks, each block is divided by its absmax (kept in fp32), and every element is
/// replaced by the index of the nearest of 256 code values.
/// </summary>
public static class BlockwiseQuantizer
{
    // held for the process (HeldScalars): this runs twice per quantized parameter per step, and an implicit temporary
    // Scalar can be freed while libtorch reads it
    static readonly Scalar Zero = 0.0f.ToScalar();

    /// <summary>
    /// bitsandbytes' dynamic quantisation map: for exponent i = 0..maxExponentBits-1 the midpoints of
    /// linspace(0.1, 1, k+1) scaled by 10^(i-(maxExponentBits-1)), with k = 2^i (signed, both signs) or 2^(i+1)
    /// (unsigned, positive only), plus 0 and 1; padded with zeros to 256 and sorted. Computed in fp32 as bitsandbytes does.
    /// </summary>
    public static Tensor CreateDynamicMap(bool signed, int maxExponentBits = 7, int totalBits = 8)
    {
        if (totalBits < 2 || totalBits > 8)
            throw new ArgumentOutOfRangeException(nameof(totalBits), totalBits, "totalBits must be in [2, 8].");
        if (maxExponentBits < 1 || maxExponentBits > totalBits - 1)
            throw new ArgumentOutOfRangeException(nameof(maxExponentBits), maxExponentBits, "maxExponentBits must be in [1, totalBits-1].");
        using var scope = torch.NewDisposeScope();
        var data = new List<float>(256);
        int nonSignBits = totalBits - 1;
        int additionalItems = (1 << (nonSignBits - maxExponentBits)) - 1;
        void AddMeans(int boundariesCount, double scale)
        {
            var b = torch.linspace(0.1, 1.0, boundariesCount, ScalarType.Float32);
            var means = (b[..^1] + b[1..]) / 2.0f;
            var pos = (means * scale).data<float>().ToArray();
            data.AddRange(pos);
            if (signed) data.AddRange((means * -scale).data<float>().ToArray());
        }
        int last = 0;
        for (int i = 0; i < maxExponentBits; i++)
        {
            last = i;
            int fractionItems = signed
                ? (1 << (i + nonSignBits - maxExponentBits)) + 1
                : (1 << (i + nonSignBits - maxExponentBits + 1)) + 1;
            AddMeans(fractionItems, Math.Pow(10, -(maxExponentBits - 1) + i));
        }
        if (additionalItems > 0)
            AddMeans(additionalItems + 1, Math.Pow(10, -(maxExponentBits - 1) + last));
        data.Add(0f);
        data.Add(1f);
        if (data.Count != 1 << totalBits)
            throw new InvalidOperationException($"Dynamic map has {data.Count} entries, expected {1 << totalBits}.");
        while (data.Count < 256) data.Add(0f);
        data.Sort();
        return torch.tensor(data.ToArray()).MoveToOuterDisposeScope();
    }

    /// <summary>Midpoints between consecutive code values: <c>bucketize</c> against them gives the nearest code.</summary>
    public static Tensor Midpoints(Tensor code)
    {
        using var scope = torch.NewDisposeScope();
        return ((code[1..] + code[..^1]) / 2.0f).MoveToOuterDisposeScope();
    }

    /// <summary>Number of blocks for <paramref name="numel"/> elements.</summary>
    public static long BlockCount(long numel, int blockSize) => (numel + blockSize - 1) / blockSize;

    /// <summary>
    /// Quantises fp32 <paramref name="x"/> into <paramref name="codesOut"/> (uint8, numel elements) and
    /// <paramref name="absmaxOut"/> (fp32, one per block), in place: nearest code of x / absmax(block).
    /// </summary>
    public static void Quantize(Tensor x, Tensor midpoints, int blockSize, Tensor codesOut, Tensor absmaxOut)
    {
        using var scope = torch.NewDisposeScope();
        long n = x.numel();
        long nb = BlockCount(n, blockSize);
        var flat = x.reshape(-1);
        long pad = nb * blockSize - n;
        if (pad > 0) flat = torch.cat(new[] { flat, torch.zeros(pad, flat.dtype, flat.device) });
        var blocks = flat.view(nb, blockSize);
        var absmax = blocks.abs().amax(new long[] { 1 });
        var scale = torch.where(absmax.gt(Zero), absmax, torch.ones_like(absmax));
        var normed = blocks / scale.unsqueeze(1);
        var idx = torch.bucketize(normed, midpoints, outInt32: true).reshape(-1);
        if (pad > 0) idx = idx[..(int)n];
        codesOut.copy_(idx.to(ScalarType.Byte));
        absmaxOut.copy_(absmax);
    }

    /// <summary>Inverse of <see cref="Quantize"/>: code[q] × absmax(block), as fp32 of <paramref name="shape"/>.</summary>
    public static Tensor Dequantize(Tensor codes, Tensor absmax, Tensor code, int blockSize, long[] shape)
    {
        using var scope = torch.NewDisposeScope();
        long n = codes.numel();
        long nb = BlockCount(n, blockSize);
        var vals = code.index_select(0, codes.to(ScalarType.Int64));
        long pad = nb * blockSize - n;
        if (pad > 0) vals = torch.cat(new[] { vals, torch.zeros(pad, vals.dtype, vals.device) });
        var outv = (vals.view(nb, blockSize) * absmax.unsqueeze(1)).reshape(-1);
        if (pad > 0) outv = outv[..(int)n];
        return outv.reshape(shape).contiguous().MoveToOuterDisposeScope();
    }
}
