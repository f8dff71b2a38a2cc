using DreamBooth.Loading;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.Training.Optim;
using TorchSharp;
using Parameter = TorchSharp.Modules.Parameter;
using AdamW = DreamBooth.Training.Optim.AdamW;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DreamBooth.Tests.Training.Optim;

public class AdamWTests(ITestOutputHelper output)
{
    [Fact]
    public void SingleStepMatchesHandComputation()
    {
        // p=1, g=0.5, lr=0.1, wd=0.01, step 1: m̂ = g, v̂ = g², so p' = p(1 - lr·wd) - lr·g/(|g| + eps).
        using var p = new Parameter(torch.tensor(new[] { 1.0f, -2.0f }));
        using var opt = new AdamW(new[] { p }, 0.1, new AdamWOptions { WeightDecay = 0.01 });
        p.grad = torch.tensor(new[] { 0.5f, -0.25f });
        opt.Step();
        double e0 = 1.0 * (1 - 0.001) - 0.1 * 0.5 / (0.5 + 1e-8);
        double e1 = -2.0 * (1 - 0.001) + 0.1 * 0.25 / (0.25 + 1e-8);
        var got = p.detach().data<float>().ToArray();
        Assert.Equal(e0, got[0], 6);
        Assert.Equal(e1, got[1], 6);
        Assert.Equal(1, opt.StepCount);
    }

    [Fact]
    public void MatchesTorchSharpAdamWOnSmallProblem()
    {
        using var a = new TinyMlp(8, 16, 4, seed: 3);
        using var b = new TinyMlp(8, 16, 4, seed: 3);
        var opts = new AdamWOptions { Beta1 = 0.9, Beta2 = 0.999, Eps = 1e-8, WeightDecay = 0.05 };
        using var ours = new AdamW(a.All, 3e-3, opts);
        using var theirs = torch.optim.AdamW(b.All, lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.05);
        double maxDiff = 0, maxRel = 0;
        for (int s = 0; s < 50; s++)
        {
            using var scope = torch.NewDisposeScope();
            ours.ZeroGrad();
            theirs.zero_grad();
            a.LossAndBackward(s);
            b.LossAndBackward(s);
            ours.Step();
            theirs.step();
        }
        for (int i = 0; i < a.All.Length; i++)
        {
            double d = OptimTestHelpers.MaxAbsDiff(a.All[i], b.All[i]);
            maxDiff = Math.Max(maxDiff, d);
            maxRel = Math.Max(maxRel, d / OptimTestHelpers.Norm(b.All[i]));
        }
        bool identical = a.All.Zip(b.All).All(t => t.First.Same(t.Second));
        output.WriteLine($"50 steps vs TorchSharp AdamW: max |Δp| = {maxDiff:E3}, max |Δp|/||p|| = {maxRel:E3}, bit-identical = {identical}");
        // PyTorch's m.lerp_(g, 1-β1) vs TorchSharp's m·β1 + (1-β1)·g differ by rounding only.
        Assert.True(maxDiff < 1e-6, $"max |Δp| = {maxDiff}");
    }

    [Fact]
    public void SkipsParametersWithoutGradAndKeepsTheirStepCounter()
    {
        using var a = new Parameter(torch.ones(3));
        using var b = new Parameter(torch.ones(3));
        using var opt = new AdamW(new[] { a, b }, 0.1);
        a.grad = torch.ones(3);
        opt.Step();
        Assert.True(b.detach().Same(torch.ones(3)));
        Assert.False(a.detach().Same(torch.ones(3)));
        var sd = opt.StateDict();
        Assert.True(sd.ContainsKey("state.0.0.step"));
        Assert.False(sd.ContainsKey("state.0.1.step"));
        Assert.Equal(1L, sd["state.0.0.step"].item<long>());
        foreach (var t in sd.Values) t.Dispose();
        opt.ZeroGrad();
        Assert.Null(a.grad);
    }

    [Fact]
    public void ParamGroupsUseTheirOwnLearningRate()
    {
        using var unet = new Parameter(torch.ones(4));
        using var text = new Parameter(torch.ones(4));
        using var opt = new AdamW(new[]
        {
            new ParameterGroup("unet", new[] { unet }, 1e-2),
            new ParameterGroup("text_encoder", new[] { text }, 1e-3, weightDecay: 0.0),
        }, new AdamWOptions { WeightDecay = 0.0 });
        unet.grad = torch.ones(4);
        text.grad = torch.ones(4);
        opt.Step();
        // Step 1 moves each parameter by ≈ its lr (m̂/sqrt(v̂) = 1).
        Assert.Equal(1 - 1e-2, unet.detach()[0].item<float>(), 5);
        Assert.Equal(1 - 1e-3, text.detach()[0].item<float>(), 5);
        opt.SetLearningRateMultiplier(0.5);
        Assert.Equal(5e-3, opt.Groups[0].LearningRate, 12);
        Assert.Equal(5e-4, opt.Groups[1].LearningRate, 12);
        Assert.Throws<ArgumentException>(() => new AdamW(new[]
        {
            new ParameterGroup("a", new[] { unet }, 1e-3), new ParameterGroup("b", new[] { unet }, 1e-3),
        }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AdamWOptions { Beta2 = 1.0 }.Validate());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ResumeFromSavedStateIsBitIdentical(bool eightBit)
    {
        const int total = 12, cut = 5;
        var q = new Quantization8bitOptions { BlockSize = 64, MinQuantizedElements = 256 };
        ITrainingOptimizer Make(TinyMlp m) => eightBit
            ? new AdamW8bit(new[] { new ParameterGroup("w", new[] { m.W1, m.W2 }, 2e-3), new ParameterGroup("b", new[] { m.B1, m.B2 }, 1e-3) }, null, q)
            : new AdamW(new[] { new ParameterGroup("w", new[] { m.W1, m.W2 }, 2e-3), new ParameterGroup("b", new[] { m.B1, m.B2 }, 1e-3) });
        var schedule = new LrScheduleOptions { Kind = LrScheduleKind.Cosine, WarmupSteps = 3, TrainingSteps = total };

        // Uninterrupted run.
        using var full = new TinyMlp(16, 32, 8, seed: 7);
        using (var opt = Make(full)) OptimTestHelpers.Train(full, opt, 0, total, schedule);

        // Interrupted run: train, save params + optimizer state to disk, rebuild everything, load, continue.
        using var dir = TestPaths.NewTempDir();
        string path = Path.Combine(dir.Path, "opt.safetensors");
        string modelPath = Path.Combine(dir.Path, "model.safetensors");
        using (var first = new TinyMlp(16, 32, 8, seed: 7))
        using (var opt = Make(first))
        {
            OptimTestHelpers.Train(first, opt, 0, cut, schedule);
            var sd = opt.StateDict();
            if (eightBit) Assert.Contains("state.0.0.exp_avg.q", sd.Keys);
            Safetensors.Save(path, sd);
            foreach (var t in sd.Values) t.Dispose();
            Safetensors.Save(modelPath, new Dictionary<string, Tensor> { ["W1"] = first.W1, ["B1"] = first.B1, ["W2"] = first.W2, ["B2"] = first.B2 });
        }
        using var resumed = new TinyMlp(16, 32, 8, seed: 99); // different init: everything must come from the files
        var weights = Safetensors.Load(modelPath);
        using (torch.no_grad())
        {
            resumed.W1.copy_(weights["W1"]); resumed.B1.copy_(weights["B1"]);
            resumed.W2.copy_(weights["W2"]); resumed.B2.copy_(weights["B2"]);
        }
        using (var opt = Make(resumed))
        {
            var loaded = Safetensors.Load(path);
            opt.LoadStateDict(loaded);
            Assert.Equal(cut, opt.StepCount);
            OptimTestHelpers.Train(resumed, opt, cut, total, schedule);
            foreach (var t in loaded.Values) t.Dispose();
        }
        for (int i = 0; i < full.All.Length; i++)
            Assert.True(full.All[i].Same(resumed.All[i]), $"parameter {i} differs after resume (max |Δ| = {OptimTestHelpers.MaxAbsDiff(full.All[i], resumed.All[i])})");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void StepsDoNotLeakTensors(bool eightBit)
    {
        using var m = new TinyMlp(64, 128, 8, seed: 4);
        using ITrainingOptimizer opt = eightBit ? new AdamW8bit(m.All, 1e-3) : new AdamW(m.All, 1e-3);
        var counts = new List<long>();
        for (int s = 0; s < 6; s++)
        {
            OptimTestHelpers.Train(m, opt, s, s + 1);
            GradClip.ClipGradNorm(m.All, 1.0);
            counts.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        }
        Assert.True(counts.Skip(2).All(c => c == counts[1]), "live tensors per step: " + string.Join(", ", counts));
    }

    [Fact]
    public void LoadStateDictIsStrictAndLoud()
    {
        using var m = new TinyMlp(4, 8, 2, seed: 1);
        using var opt = new AdamW(m.All, 1e-3);
        OptimTestHelpers.Train(m, opt, 0, 2);
        var sd = opt.StateDict();
        using var other = new TinyMlp(4, 6, 2, seed: 1); // hidden size differs
        using var opt2 = new AdamW(other.All, 1e-3);
        var ex = Assert.Throws<InvalidDataException>(() => opt2.LoadStateDict(sd));
        Assert.Contains("shape", ex.Message);
        sd["state.9.9.exp_avg"] = torch.zeros(1);
        using var opt3 = new AdamW(m.All, 1e-3);
        ex = Assert.Throws<InvalidDataException>(() => opt3.LoadStateDict(sd));
        Assert.Contains("unexpected", ex.Message);
        using var opt4 = new AdamW8bit(m.All, 1e-3);
        sd.Remove("state.9.9.exp_avg");
        // fp32 AdamW state of a big-enough tensor is not an 8-bit state.
        using var big = new TinyMlp(64, 128, 2, seed: 2);
        using var o5 = new AdamW(big.All, 1e-3);
        OptimTestHelpers.Train(big, o5, 0, 1);
        var sdBig = o5.StateDict();
        using var o6 = new AdamW8bit(big.All, 1e-3);
        ex = Assert.Throws<InvalidDataException>(() => o6.LoadStateDict(sdBig));
        Assert.Contains("exp_avg.q", ex.Message);
        foreach (var t in sd.Values.Concat(sdBig.Values)) t.Dispose();
    }
}
