using DreamBooth.Loading;
using DreamBooth.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Tests.Sampling;

public sealed class SamplerTests
{
    static readonly SchedulerConfig Sd = SchedulerConfig.StableDiffusion;

    static Tensor Randn(long seed, params long[] shape)
    {
        using var g = new torch.Generator((ulong)seed);
        return torch.randn(shape, generator: g);
    }

    /// <summary>Runs the full loop with a fixed stand-in denoiser; stochastic samplers get seeded noise.</summary>
    static Tensor RunLoop(SamplingRun run, Tensor start, Tensor modelConst, long noiseSeed)
    {
        using var noise = new GeneratorNoiseSource(noiseSeed);
        var x = start * (float)run.InitNoiseSigma;
        for (int i = run.BeginIndex; i < run.Timesteps.Count; i++)
        {
            using var scope = torch.NewDisposeScope();
            var input = run.ScaleModelInput(x, i);
            var output = 0.1f * input + 0.05f * modelConst;
            x = run.Step(output, i, x, noise).PrevSample.MoveToOuterDisposeScope();
        }
        return x;
    }

    [Theory]
    [InlineData(Sampler.Ddim)]
    [InlineData(Sampler.Ddpm)]
    [InlineData(Sampler.Euler)]
    [InlineData(Sampler.EulerAncestral)]
    [InlineData(Sampler.Heun)]
    [InlineData(Sampler.Lms)]
    [InlineData(Sampler.DpmPP2M)]
    [InlineData(Sampler.DpmPP2MKarras)]
    [InlineData(Sampler.DpmPPSdeKarras)]
    [InlineData(Sampler.Pndm)]
    [InlineData(Sampler.UniPC)]
    public void A_sampler_gives_identical_results_run_after_run_and_interleaved(Sampler kind)
    {
        using var sampler = SamplerFactory.Create(kind, Sd, new SamplerOptions { Eta = 0.3 });
        var start = Randn(1, 1, 4, 8, 8);
        var c = Randn(2, 1, 4, 8, 8);
        using var r1 = sampler.Start(12);
        var a = RunLoop(r1, start, c, 7);
        using var r2 = sampler.Start(12);
        var b = RunLoop(r2, start, c, 7);
        Assert.True(a.isfinite().all().item<bool>());
        Assert.True(a.eq(b).all().item<bool>(), $"{kind}: second run differs by {(a - b).abs().max().item<float>()}");

        // two runs stepped alternately from the same sampler object do not disturb each other
        using var ra = sampler.Start(12);
        using var rb = sampler.Start(12);
        using var na = new GeneratorNoiseSource(7);
        using var nb = new GeneratorNoiseSource(7);
        Tensor xa = start * (float)ra.InitNoiseSigma, xb = start * (float)rb.InitNoiseSigma;
        for (int i = 0; i < ra.Timesteps.Count; i++)
        {
            xa = ra.Step(0.1f * ra.ScaleModelInput(xa, i) + 0.05f * c, i, xa, na).PrevSample;
            xb = rb.Step(0.1f * rb.ScaleModelInput(xb, i) + 0.05f * c, i, xb, nb).PrevSample;
        }
        Assert.True(xa.eq(a).all().item<bool>());
        Assert.True(xb.eq(a).all().item<bool>());
    }

    [Fact]
    public void Steps_out_of_order_are_refused()
    {
        using var sampler = SamplerFactory.Create(Sampler.DpmPP2M, Sd);
        using var run = sampler.Start(5);
        var x = Randn(3, 1, 4, 4, 4);
        var ex = Assert.Throws<InvalidOperationException>(() => run.Step(x, 1, x));
        Assert.Contains("in order", ex.Message);
    }

    [Fact]
    public void Stochastic_sampler_without_noise_source_says_what_to_pass()
    {
        using var sampler = SamplerFactory.Create(Sampler.EulerAncestral, Sd);
        using var run = sampler.Start(5);
        var x = Randn(3, 1, 4, 4, 4);
        var ex = Assert.Throws<ArgumentNullException>(() => run.Step(x, 0, x));
        Assert.Contains("INoiseSource", ex.Message);
    }

    [Fact]
    public void Ancestral_noise_has_the_sample_shape()
    {
        using var sampler = SamplerFactory.Create(Sampler.EulerAncestral, Sd);
        using var run = sampler.Start(4);
        var x = Randn(3, 2, 4, 6, 5);
        var wrong = new RecordedNoiseSource([torch.zeros(1, 4, 6, 5)]);
        Assert.Throws<InvalidOperationException>(() => run.Step(x, 0, x, wrong));
        using var run2 = sampler.Start(4);
        var ok = new RecordedNoiseSource([torch.zeros(2, 4, 6, 5)]);
        run2.Step(x, 0, x, ok);
        Assert.Equal(1, ok.Used);
    }

    [Theory]
    [InlineData("Euler a", Sampler.EulerAncestral)]
    [InlineData("euler_ancestral", Sampler.EulerAncestral)]
    [InlineData("EulerAncestralDiscreteScheduler", Sampler.EulerAncestral)]
    [InlineData("DPM++ 2M Karras", Sampler.DpmPP2MKarras)]
    [InlineData("dpmpp_2m_karras", Sampler.DpmPP2MKarras)]
    [InlineData("DPM++ 2M", Sampler.DpmPP2M)]
    [InlineData("DPM++ SDE Karras", Sampler.DpmPPSdeKarras)]
    [InlineData("ddim", Sampler.Ddim)]
    [InlineData("DDPM", Sampler.Ddpm)]
    [InlineData("PLMS", Sampler.Pndm)]
    [InlineData("pndm", Sampler.Pndm)]
    [InlineData("UniPC", Sampler.UniPC)]
    [InlineData("  lms ", Sampler.Lms)]
    [InlineData("Heun", Sampler.Heun)]
    [InlineData("Euler", Sampler.Euler)]
    public void Sampler_names_parse(string name, Sampler expected) => Assert.Equal(expected, SamplerFactory.Parse(name));

    [Fact]
    public void Unknown_sampler_name_lists_the_valid_ones()
    {
        var ex = Assert.Throws<ArgumentException>(() => SamplerFactory.Parse("Euler b"));
        Assert.Contains("Euler b", ex.Message);
        foreach (var n in new[] { "\"Euler a\"", "\"DPM++ 2M Karras\"", "\"DDIM\"", "\"UniPC\"", "\"PLMS\"" })
            Assert.Contains(n, ex.Message);
        Assert.False(SamplerFactory.TryParse("", out _));
        foreach (var s in Enum.GetValues<Sampler>())
            Assert.Equal(s, SamplerFactory.Parse(SamplerFactory.DisplayName(s)));
    }

    [Fact]
    public void Karras_sigmas_match_the_k_diffusion_formula()
    {
        // (σmax^(1/7) + i/(n-1)·(σmin^(1/7) − σmax^(1/7)))^7, computed independently in Python for n = 5
        var s = SigmaSchedules.Karras(5, 0.0292, 14.6146);
        double[] expected = [14.614599999999992, 4.797174015650202, 1.274515712136457, 0.24810378917103615, 0.029200000000000004];
        for (int i = 0; i < 5; i++) Assert.Equal(expected[i], s[i], 12);
    }

    [Fact]
    public void Karras_sampler_uses_karras_sigmas_over_the_training_range()
    {
        using var sampler = SamplerFactory.Create(Sampler.DpmPP2MKarras, Sd);
        using var run = sampler.Start(8);
        var train = sampler.Schedule.TrainSigmas;
        var k = SigmaSchedules.Karras(8, train[0], train[^1]);
        for (int i = 0; i < 8; i++) Assert.Equal((float)k[i], (float)run.Sigmas![i]);
        Assert.Equal(0.0, run.Sigmas![8]);
        Assert.Equal(999, run.Timesteps[0]);
        Assert.All(run.Timesteps, t => Assert.Equal(Math.Round(t), t));
        Assert.True(run.Timesteps.Zip(run.Timesteps.Skip(1)).All(p => p.First >= p.Second));
    }

    [Fact]
    public void Trailing_spacing_follows_the_diffusers_formula()
    {
        // round(arange(T, 0, -T/n)) - 1
        var cfg = Sd with { TimestepSpacing = TimestepSpacing.Trailing };
        using var ddim = SamplerFactory.Create(Sampler.Ddim, cfg);
        using var r10 = ddim.Start(10);
        Assert.Equal([999, 899, 799, 699, 599, 499, 399, 299, 199, 99], r10.Timesteps.Select(t => (int)t));
        using var r3 = ddim.Start(3);
        Assert.Equal([999, 666, 332], r3.Timesteps.Select(t => (int)t)); // 1000, 666.67, 333.33 → 1000, 667, 333
        using var r7 = ddim.Start(7); // 1000/7 = 142.857…: 1000, 857.14, 714.29, 571.43, 428.57, 285.71, 142.86
        Assert.Equal([999, 856, 713, 570, 428, 285, 142], r7.Timesteps.Select(t => (int)t));

        using var euler = SamplerFactory.Create(Sampler.Euler, cfg);
        using var e7 = euler.Start(7);
        Assert.Equal([999.0, 856, 713, 570, 428, 285, 142], e7.Timesteps);
        Assert.Equal((float)euler.Schedule.TrainSigmas[999], (float)e7.Sigmas![0]);
        Assert.Equal((float)euler.Schedule.TrainSigmas[142], (float)e7.Sigmas![6]);
        Assert.Equal((float)e7.Sigmas![0], (float)e7.InitNoiseSigma); // trailing: max σ, not √(σ²+1)

        using var dpm = SamplerFactory.Create(Sampler.DpmPP2M, cfg);
        using var d7 = dpm.Start(7);
        Assert.Equal([999.0, 856, 713, 570, 428, 285, 142], d7.Timesteps);
    }

    [Fact]
    public void Leading_and_linspace_spacing_follow_the_diffusers_formula()
    {
        using var ddim = SamplerFactory.Create(Sampler.Ddim, Sd);
        using var r = ddim.Start(4); // leading: i * (1000 // 4) + 1
        Assert.Equal([751.0, 501, 251, 1], r.Timesteps);
        using var lin = SamplerFactory.Create(Sampler.Ddim, Sd with { TimestepSpacing = TimestepSpacing.Linspace });
        using var l = lin.Start(25); // round-half-even of 41.625·k: 166.5 → 166
        Assert.Contains(166.0, l.Timesteps);
        Assert.Equal(999.0, l.Timesteps[0]);
        Assert.Equal(0.0, l.Timesteps[^1]);
    }

    [Theory]
    [InlineData(Sampler.Ddim, 50, 0.75, 13)]
    [InlineData(Sampler.Euler, 50, 0.75, 13)]
    [InlineData(Sampler.Heun, 20, 0.5, 20)]
    [InlineData(Sampler.DpmPP2M, 30, 0.8, 6)]
    [InlineData(Sampler.UniPC, 10, 1.0, 0)]
    [InlineData(Sampler.Lms, 10, 0.0, 10)]
    public void Image_to_image_starts_where_get_timesteps_says(Sampler kind, int steps, double strength, int begin)
    {
        using var sampler = SamplerFactory.Create(kind, Sd);
        using var full = sampler.Start(steps);
        using var run = sampler.StartImageToImage(steps, strength);
        Assert.Equal(begin, run.BeginIndex);
        Assert.Equal(begin, run.NextStepIndex);
        Assert.Equal(full.Timesteps, run.Timesteps);
        if (begin >= run.Timesteps.Count) return;

        var x0 = Randn(4, 1, 4, 8, 8);
        var n = Randn(5, 1, 4, 8, 8);
        var noisy = run.AddNoise(x0, n, begin);
        Tensor expected = run.Sigmas is null
            ? sampler.Schedule.AddNoise(x0, n, torch.tensor(new[] { (long)run.Timesteps[begin] }))
            : kind is Sampler.DpmPP2M or Sampler.UniPC
                ? (x0 + (float)run.Sigmas[begin] * n) / MathF.Sqrt((float)(run.Sigmas[begin] * run.Sigmas[begin]) + 1)
                : x0 + (float)run.Sigmas[begin] * n;
        Assert.True(noisy.allclose(expected, rtol: 1e-5, atol: 1e-5));
        // the run then accepts the first step at BeginIndex and refuses index 0
        if (begin > 0)
            Assert.Throws<InvalidOperationException>(() => run.Step(noisy, 0, noisy, new GeneratorNoiseSource(1)));
        var r = run.Step(0.1f * run.ScaleModelInput(noisy, begin), begin, noisy, new GeneratorNoiseSource(1));
        Assert.Equal(noisy.shape, r.PrevSample.shape);
    }

    [Fact]
    public void Image_to_image_strength_is_validated()
    {
        using var sampler = SamplerFactory.Create(Sampler.Ddim, Sd);
        Assert.Throws<ArgumentOutOfRangeException>(() => sampler.StartImageToImage(10, 1.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => sampler.Start(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => sampler.Start(1001));
    }
}
