using DreamBooth.Training.Optim;
using TorchSharp;
using Parameter = TorchSharp.Modules.Parameter;
using AdamW = DreamBooth.Training.Optim.AdamW;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DreamBooth.Tests.Training.Optim;

public class AdamW8bitTests(ITestOutputHelper output)
{
    [Fact]
    public void DynamicMapsFollowBitsandbytes()
    {
        using var s = BlockwiseQuantizer.CreateDynamicMap(signed: true);
        using var u = BlockwiseQuantizer.CreateDynamicMap(signed: false);
        var sv = s.data<float>().ToArray();
        var uv = u.data<float>().ToArray();
        Assert.Equal(256, sv.Length);
        Assert.Equal(256, uv.Length);
        Assert.True(sv.Zip(sv.Skip(1)).All(t => t.First < t.Second), "signed map must be strictly increasing");
        Assert.True(uv.Zip(uv.Skip(1)).All(t => t.First < t.Second), "unsigned map must be strictly increasing");
        Assert.Equal(1.0f, sv[^1]);
        Assert.Equal(1.0f, uv[^1]);
        Assert.Equal(0.0f, uv[0]);
        Assert.Contains(0.0f, sv);
        // Signed: 127 negative values, 0, 127 positive values + 1.0; smallest magnitude 1e-6 · 0.55 (linspace(0.1,1,2) midpoint).
        Assert.Equal(127, sv.Count(v => v < 0));
        Assert.Equal(5.5e-7, sv.Where(v => v > 0).Min(), 12);
        Assert.Equal(-5.5e-7, sv.Where(v => v < 0).Max(), 12);
        // Most negative: last exponent (10^0), last midpoint of linspace(0.1, 1, 65) = 1 - 0.9/128.
        Assert.Equal(-(1 - 0.9 / 128), sv[0], 6);
        // Unsigned: smallest positive = 1e-6 · midpoint of (0.1, 0.55) = 3.25e-7; 254 positive values below 1.
        Assert.Equal(3.25e-7, uv[1], 12);
        Assert.Equal(7.75e-7, uv[2], 12);
    }

    [Fact]
    public void QuantizeChoosesNearestCodeAndRoundTrips()
    {
        var g = new Generator(5);
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(new long[] { 3, 1000 }, generator: g) * torch.logspace(-4, 1, 3000).reshape(3, 1000);
        var code = BlockwiseQuantizer.CreateDynamicMap(true);
        var mid = BlockwiseQuantizer.Midpoints(code);
        const int bs = 256;
        long nb = BlockwiseQuantizer.BlockCount(x.numel(), bs);
        var q = torch.zeros(x.numel(), ScalarType.Byte);
        var absmax = torch.zeros(nb);
        BlockwiseQuantizer.Quantize(x, mid, bs, q, absmax);
        Assert.Equal(12, nb);
        // Brute force nearest code per element.
        var flat = x.reshape(-1);
        var blockIdx = torch.tensor(Enumerable.Range(0, (int)x.numel()).Select(i => (long)(i / bs)).ToArray());
        var expectedAbsmax = torch.stack(Enumerable.Range(0, (int)nb).Select(b => flat[(b * bs)..Math.Min((b + 1) * bs, 3000)].abs().max()).ToArray());
        Assert.True(absmax.Same(expectedAbsmax));
        var normed = flat / absmax.index_select(0, blockIdx);
        var dist = (normed.unsqueeze(1) - code.unsqueeze(0)).abs();
        var bestDist = dist.min(1).values;
        var chosenDist = dist.gather(1, q.to(ScalarType.Int64).unsqueeze(1)).squeeze(1);
        Assert.True((chosenDist - bestDist).abs().max().item<float>() < 1e-7f, "quantisation must pick the nearest code");
        var back = BlockwiseQuantizer.Dequantize(q, absmax, code, bs, x.shape);
        Assert.Equal(x.shape, back.shape);
        // Dynamic code: per-element error is at most half the local code spacing; the widest relative gaps sit at the
        // decade boundaries (e.g. between 0.00986 and 0.0114), about 7% each side, the typical error is ~1.5%.
        var big = normed.abs() > 0.01;
        var rel = ((back.reshape(-1) - flat).abs() / flat.abs()).masked_select(big);
        output.WriteLine($"round-trip relative error (|x| > absmax/100): max {rel.max().item<float>():E3}, mean {rel.mean().item<float>():E3}");
        Assert.True(rel.max().item<float>() < 0.12f);
        Assert.True(rel.mean().item<float>() < 0.03f);
    }

    [Fact]
    public void TracksFp32AdamWOnSmallMlp()
    {
        const int steps = 150;
        // 64→128→32 MLP: W1 (8192) and W2 (4096) get 8-bit state, the biases stay fp32.
        using var a = new TinyMlp(64, 128, 32, seed: 11);
        using var b = new TinyMlp(64, 128, 32, seed: 11);
        using var init = new TinyMlp(64, 128, 32, seed: 11);
        using var fp32 = new AdamW(a.All, 2e-3);
        using var q8 = new AdamW8bit(b.All, 2e-3);
        var l32 = OptimTestHelpers.Train(a, fp32, 0, steps);
        var l8 = OptimTestHelpers.Train(b, q8, 0, steps);
        Assert.True(q8.IsQuantized(b.W1.numel()) && q8.IsQuantized(b.W2.numel()) && !q8.IsQuantized(b.B1.numel()));
        double maxLossRel = l32.Zip(l8).Max(t => Math.Abs(t.First - t.Second) / t.First);
        double finalLossRel = Math.Abs(l32[^1] - l8[^1]) / l32[^1];
        var paramRel = new List<string>();
        double worstParamRel = 0;
        for (int i = 0; i < a.All.Length; i++)
        {
            using var scope = torch.NewDisposeScope();
            double diff = OptimTestHelpers.Norm(a.All[i] - b.All[i]);
            double moved = OptimTestHelpers.Norm(a.All[i] - init.All[i]);
            double rel = diff / moved;
            worstParamRel = Math.Max(worstParamRel, rel);
            paramRel.Add($"{new[] { "W1", "B1", "W2", "B2" }[i]}: ||p8-p32||/||p32-p0|| = {rel:F4}, ||p8-p32||/||p32|| = {diff / OptimTestHelpers.Norm(a.All[i]):E2}");
        }
        output.WriteLine($"{steps} steps: loss fp32 {l32[0]:F5} -> {l32[^1]:F5}, 8-bit {l8[0]:F5} -> {l8[^1]:F5}");
        output.WriteLine($"loss curve: max relative deviation {maxLossRel:E3}, final {finalLossRel:E3}");
        foreach (var s in paramRel) output.WriteLine(s);
        Assert.True(l8[^1] < 0.5 * l8[0], "8-bit AdamW must train");
        Assert.True(maxLossRel < 0.05, $"loss curves deviate by {maxLossRel:P2}");
        Assert.True(worstParamRel < 0.1, $"parameter updates deviate by {worstParamRel:P2}");
    }

    [Fact]
    public void SmallTensorsKeepFp32StateAndMatchAdamWExactly()
    {
        using var a = new TinyMlp(8, 16, 4, seed: 21);
        using var b = new TinyMlp(8, 16, 4, seed: 21);
        using var fp32 = new AdamW(a.All, 1e-2);
        using var q8 = new AdamW8bit(b.All, 1e-2); // all tensors < 4096 elements
        OptimTestHelpers.Train(a, fp32, 0, 10);
        OptimTestHelpers.Train(b, q8, 0, 10);
        for (int i = 0; i < a.All.Length; i++)
            Assert.True(a.All[i].Same(b.All[i]));
        Assert.Equal(fp32.StateBytes, q8.StateBytes); // no quantised tensor: no code maps either
    }

    [Fact]
    public void StateMemoryIsUnderOneThirdPointFiveOfFp32()
    {
        // A realistic slice of an SD 1.x UNet down block (channels 320) plus its norms and biases.
        long[][] shapes =
        {
            new long[] { 320, 4, 3, 3 }, new long[] { 320 },                                   // conv_in
            new long[] { 1280, 320 }, new long[] { 1280 }, new long[] { 1280, 1280 }, new long[] { 1280 }, // time embedding
            new long[] { 320 }, new long[] { 320 }, new long[] { 320, 320, 3, 3 }, new long[] { 320 },     // resnet norm1, conv1
            new long[] { 320, 1280 }, new long[] { 320 },                                       // time_emb_proj
            new long[] { 320 }, new long[] { 320 }, new long[] { 320, 320, 3, 3 }, new long[] { 320 },     // norm2, conv2
            new long[] { 320 }, new long[] { 320 }, new long[] { 320, 320, 1, 1 }, new long[] { 320 },     // attn norm, proj_in
            new long[] { 320, 320 }, new long[] { 320, 320 }, new long[] { 320, 320 },          // attn1 q k v
            new long[] { 320, 320 }, new long[] { 320 },                                        // attn1 out
            new long[] { 320, 320 }, new long[] { 320, 768 }, new long[] { 320, 768 },          // attn2 q k v (cross)
            new long[] { 320, 320 }, new long[] { 320 },                                        // attn2 out
            new long[] { 2560, 320 }, new long[] { 2560 }, new long[] { 320, 1280 }, new long[] { 320 },   // GEGLU ff
            new long[] { 320 }, new long[] { 320 }, new long[] { 320 }, new long[] { 320 }, new long[] { 320 }, new long[] { 320 }, // layer norms
        };
        var pa = shapes.Select(s => new Parameter(torch.zeros(s))).ToArray();
        var pb = shapes.Select(s => new Parameter(torch.zeros(s))).ToArray();
        try
        {
            using var fp32 = new AdamW(pa, 1e-4);
            using var q8 = new AdamW8bit(pb, 1e-4);
            foreach (var p in pa.Concat(pb)) p.grad = torch.randn(p.shape);
            fp32.Step();
            q8.Step();
            long n = pa.Sum(p => p.numel());
            double ratio = (double)q8.StateBytes / fp32.StateBytes;
            output.WriteLine($"{n:N0} parameters in {pa.Length} tensors: fp32 AdamW state {fp32.StateBytes:N0} B, 8-bit {q8.StateBytes:N0} B, ratio {ratio:F4} (1/{1 / ratio:F2})");
            Assert.Equal(8L * n, fp32.StateBytes);
            Assert.True(ratio <= 1 / 3.5, $"8-bit state is {ratio:P2} of fp32");
        }
        finally
        {
            foreach (var p in pa.Concat(pb)) p.Dispose();
        }
    }

    [Fact]
    public void Bf16ParametersAreUpdatedInFp32()
    {
        using var p = new Parameter(torch.ones(5000, ScalarType.BFloat16));
        using var opt = new AdamW8bit(new[] { p }, 1e-2, new AdamWOptions { WeightDecay = 0 });
        p.grad = torch.ones(5000, ScalarType.BFloat16);
        opt.Step();
        Assert.Equal(ScalarType.BFloat16, p.dtype);
        Assert.Equal(0.99, p.detach().to(ScalarType.Float32)[0].item<float>(), 2);
    }
}
