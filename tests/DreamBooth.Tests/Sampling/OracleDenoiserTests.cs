using DreamBooth.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Tests.Sampling;

/// <summary>
/// With a perfect denoiser (it knows x₀ and answers with the exact ε, v or x₀ target for the input it is given)
/// every sampler must land on x₀: this exercises the epsilon, v_prediction and sample paths of each sampler.
/// </summary>
public sealed class OracleDenoiserTests
{
    public static TheoryData<Sampler, PredictionType> Cases()
    {
        var d = new TheoryData<Sampler, PredictionType>();
        foreach (var s in new[] { Sampler.Ddim, Sampler.Ddpm, Sampler.Euler, Sampler.EulerAncestral, Sampler.Heun, Sampler.Lms, Sampler.DpmPP2M, Sampler.DpmPP2MKarras, Sampler.Pndm, Sampler.UniPC })
            foreach (var p in Enum.GetValues<PredictionType>())
                // PNDM: diffusers has no x0 path, and it mixes raw v outputs of different timesteps in its
                // multistep sums before converting them to ε, so PLMS with v is not exact even for a perfect model.
                if (!(s == Sampler.Pndm && p != PredictionType.Epsilon))
                    d.Add(s, p);
        return d;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Perfect_denoiser_lands_on_x0(Sampler kind, PredictionType prediction) => LandsOnX0(kind, SchedulerConfig.StableDiffusion with
    {
        PredictionType = prediction,
        SetAlphaToOne = true,                     // DDIM/PNDM end exactly at ᾱ = 1
        FinalSigmasType = FinalSigmasType.Zero,   // UniPC ends at σ = 0
    });

    public static TheoryData<Sampler> ZeroSnrCases() =>
        [Sampler.Ddim, Sampler.Ddpm, Sampler.Euler, Sampler.EulerAncestral, Sampler.Heun, Sampler.Lms, Sampler.DpmPP2M, Sampler.DpmPP2MKarras, Sampler.UniPC];

    /// <summary>
    /// Zero-terminal-SNR schedules (ᾱ_T = 0, v-prediction, trailing timesteps: the tiny model's scheduler) start from
    /// pure noise at t = T; samplers that divide by ᾱ use 2⁻²⁴ there and must still land on x₀.
    /// </summary>
    [Theory]
    [MemberData(nameof(ZeroSnrCases))]
    public void Perfect_v_denoiser_lands_on_x0_with_zero_terminal_snr(Sampler kind) => LandsOnX0(kind, SchedulerConfig.StableDiffusion with
    {
        PredictionType = PredictionType.VPrediction,
        RescaleBetasZeroSnr = true,
        TimestepSpacing = TimestepSpacing.Trailing,
        StepsOffset = 0,
        SetAlphaToOne = true,
        FinalSigmasType = FinalSigmasType.Zero,
    });

    static void LandsOnX0(Sampler kind, SchedulerConfig cfg)
    {
        var prediction = cfg.PredictionType;
        using var sampler = SamplerFactory.Create(kind, cfg);
        using var run = sampler.Start(15);
        using var g = new torch.Generator(11);
        var x0 = torch.randn([2, 4, 8, 8], generator: g);
        var eps = torch.randn([2, 4, 8, 8], generator: g);
        using var noise = new GeneratorNoiseSource(3);
        var ac = sampler.Schedule.AlphasCumprodValues;
        var x = eps * (float)run.InitNoiseSigma;
        if (run.Sigmas is not null && kind is Sampler.DpmPP2M or Sampler.DpmPP2MKarras or Sampler.UniPC)
            x = run.AddNoise(x0, eps, 0);
        for (int i = 0; i < run.Timesteps.Count; i++)
        {
            using var scope = torch.NewDisposeScope();
            var input = run.ScaleModelInput(x, i);
            // the VP coefficients (a, s) of the input: x_in = a·x0 + s·ε
            double a, s;
            if (run.Sigmas is null) { a = Math.Sqrt(ac[(int)run.Timesteps[i]]); s = Math.Sqrt(1 - ac[(int)run.Timesteps[i]]); }
            else { double sg = run.Sigmas[i]; a = 1 / Math.Sqrt(sg * sg + 1); s = sg * a; }
            var epsHat = (input - (float)a * x0) / (float)s;
            var output = prediction switch
            {
                PredictionType.Epsilon => epsHat,
                PredictionType.VPrediction => (float)a * epsHat - (float)s * x0,
                _ => x0.clone(),
            };
            var step = run.Step(output, i, x, noise);
            x = step.PrevSample.MoveToOuterDisposeScope();
            // DDIM/DDPM with trailing timesteps end at t = 0, not at ᾱ = 1 (as diffusers): their last sample keeps
            // √(1 − ᾱ₀) ≈ 0.03 of noise, so check their x₀ estimate of the last step instead
            if (i == run.Timesteps.Count - 1 && cfg.TimestepSpacing == TimestepSpacing.Trailing && kind is Sampler.Ddim or Sampler.Ddpm)
                x = step.PredOriginalSample!.MoveToOuterDisposeScope();
        }
        var err = (x - x0).abs().max().item<float>();
        Assert.True(err < 2e-3, $"{kind}/{prediction}: max |x - x0| = {err}");
    }
}

public sealed class PndmRungeKuttaTests
{
    [Fact]
    public void Prk_warmup_follows_diffusers_timesteps_and_lands_on_x0()
    {
        var cfg = SchedulerConfig.StableDiffusion with { SkipPrkSteps = false, SetAlphaToOne = true };
        using var sampler = SamplerFactory.FromConfig(cfg);
        using var run = sampler.Start(10);
        // prk: last four leading timesteps with half steps, each evaluated as diffusers lays them out; then PLMS
        Assert.Equal([901.0, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651, 601, 601, 501, 401, 301, 201, 101, 1], run.Timesteps);

        var ac = sampler.Schedule.AlphasCumprodValues;
        using var g = new torch.Generator(3);
        var x0 = torch.randn([1, 4, 8, 8], generator: g);
        var x = torch.randn([1, 4, 8, 8], generator: g);
        for (int i = 0; i < run.Timesteps.Count; i++)
        {
            // the ε that is exact for the current input at its timestep
            double a = ac[(int)run.Timesteps[i]];
            var eps = (x - (float)Math.Sqrt(a) * x0) / (float)Math.Sqrt(1 - a);
            x = run.Step(eps, i, x).PrevSample;
        }
        Assert.True((x - x0).abs().max().item<float>() < 2e-3);
    }
}

public sealed class DpmSdeOracleTests
{
    [Theory]
    [InlineData(PredictionType.Epsilon)]
    [InlineData(PredictionType.VPrediction)]
    public void Dpm_sde_with_a_perfect_denoiser_lands_on_x0(PredictionType prediction)
    {
        using var sampler = SamplerFactory.Create(Sampler.DpmPPSdeKarras, SchedulerConfig.StableDiffusion with { PredictionType = prediction });
        using var run = sampler.Start(8);
        Assert.Equal(2 * 8 - 1, run.Timesteps.Count);
        var logS = sampler.Schedule.TrainSigmas.Select(v => Math.Log(v)).ToArray();
        using var g = new torch.Generator(21);
        var x0 = torch.randn([1, 4, 8, 8], generator: g);
        var x = torch.randn([1, 4, 8, 8], generator: g) * (float)run.InitNoiseSigma;
        using var noise = new GeneratorNoiseSource(4);
        for (int i = 0; i < run.Timesteps.Count; i++)
        {
            // σ of the model input from its (fractional) timestep: the inverse of sigma_to_t (log-linear in t)
            double t = run.Timesteps[i];
            int lo = Math.Min((int)Math.Floor(t), logS.Length - 2);
            double sg = Math.Exp(logS[lo] + (t - lo) * (logS[lo + 1] - logS[lo]));
            double a = 1 / Math.Sqrt(sg * sg + 1), s = sg * a;
            var input = run.ScaleModelInput(x, i);
            var eps = (input - (float)a * x0) / (float)s;
            var output = prediction == PredictionType.Epsilon ? eps : (float)a * eps - (float)s * x0;
            x = run.Step(output, i, x, noise).PrevSample;
        }
        Assert.True((x - x0).abs().max().item<float>() < 5e-3);
    }
}
