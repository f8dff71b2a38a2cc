using DreamBooth.Loading;
using DreamBooth.Sampling;
using DreamBooth.Tests.Infrastructure;
using TorchSharp;

namespace DreamBooth.Tests.Sampling;

public sealed class SchedulerConfigTests
{
    [Fact]
    public void Reads_a_diffusers_config_with_python_literals_and_unknown_fields()
    {
        var cfg = SchedulerConfig.Load(TestPaths.ParityPath("schedulers", "dpmpp-2m-leading"));
        Assert.Equal("DPMSolverMultistepScheduler", cfg.ClassName);
        Assert.Equal(BetaSchedule.ScaledLinear, cfg.BetaSchedule);
        Assert.Equal(double.NegativeInfinity, cfg.LambdaMinClipped);
        Assert.Equal(DpmAlgorithmType.DpmSolverPlusPlus, cfg.AlgorithmType);
        Assert.Equal(TimestepSpacing.Leading, cfg.TimestepSpacing);
        Assert.Equal(FinalSigmasType.Zero, cfg.FinalSigmasType);
        Assert.Null(cfg.VarianceType);
        Assert.Equal(1, cfg.StepsOffset);

        var other = SchedulerConfig.Parse("""{"_class_name": "EulerDiscreteScheduler", "made_up_field": [1, 2], "beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction", "trained_betas": null}""");
        Assert.Equal(BetaSchedule.SquaredCosCapV2, other.BetaSchedule);
        Assert.Equal(PredictionType.VPrediction, other.PredictionType);
        Assert.Null(other.TimestepSpacing);
    }

    [Fact]
    public void Bad_values_name_the_file_and_the_field()
    {
        using var dir = TestPaths.NewTempDir();
        File.WriteAllText(dir.File("scheduler_config.json"), """{"_class_name": "DDIMScheduler", "prediction_type": "noise"}""");
        var ex = Assert.Throws<ModelLoadException>(() => SchedulerConfig.Load(dir.Path));
        Assert.Contains("scheduler_config.json", ex.Message);
        Assert.Contains("prediction_type", ex.Message);
        Assert.Contains("v_prediction", ex.Message);

        var ex2 = Assert.Throws<ModelLoadException>(() => SchedulerConfig.Parse("""{"num_train_timesteps": "many"}""", "x/scheduler_config.json"));
        Assert.Contains("num_train_timesteps", ex2.Message);
        var ex3 = Assert.Throws<ModelLoadException>(() => SchedulerConfig.Parse("""{"beta_start": -1}""", "y.json"));
        Assert.Contains("beta_start", ex3.Message);
        Assert.Contains("y.json", ex3.Message);
        Assert.Throws<ModelLoadException>(() => SchedulerConfig.Load(dir.File("missing")));
    }

    [Fact]
    public void Noise_schedule_snr_and_velocity_are_consistent()
    {
        using var sch = new NoiseSchedule(SchedulerConfig.StableDiffusion);
        var t = torch.tensor(new long[] { 0, 37, 500, 999 });
        var snr = sch.Snr(t);
        for (int i = 0; i < 4; i++)
        {
            int ti = (int)t[i].item<long>();
            double a = sch.AlphasCumprodValues[ti];
            Assert.Equal(a / (1 - a), snr[i].item<float>(), a / (1 - a) * 1e-4);
            Assert.Equal(sch.Snr(ti), a / (1 - a), 10);
        }
        var w = sch.MinSnrWeights(t, 5.0, PredictionType.Epsilon);
        var wv = sch.MinSnrWeights(t, 5.0, PredictionType.VPrediction);
        for (int i = 0; i < 4; i++)
        {
            double sn = snr[i].item<float>();
            Assert.Equal(Math.Min(sn, 5.0) / sn, w[i].item<float>(), 1e-5);
            Assert.Equal(Math.Min(sn, 5.0) / (sn + 1), wv[i].item<float>(), 1e-5);
        }
        Assert.Equal(1.0f, w[3].item<float>()); // t = 999 has SNR < 5: weight 1
        using var g = new torch.Generator(5);
        var x0 = torch.randn([4, 2, 3, 3], generator: g);
        var n = torch.randn([4, 2, 3, 3], generator: g);
        var xt = sch.AddNoise(x0, n, t);
        var v = sch.GetVelocity(x0, n, t);
        // x0 = √ᾱ·x_t − √(1−ᾱ)·v
        var sa = sch.AlphasCumprod.index_select(0, t).sqrt().reshape(-1, 1, 1, 1);
        var s1 = (1 - sch.AlphasCumprod.index_select(0, t)).sqrt().reshape(-1, 1, 1, 1);
        Assert.True((sa * xt - s1 * v).allclose(x0, rtol: 1e-4, atol: 1e-5));
        Assert.Throws<ArgumentOutOfRangeException>(() => sch.AddNoise(x0, n, torch.tensor(new long[] { 0, 1, 2, 1000 })));
        Assert.Throws<ArgumentException>(() => sch.AddNoise(x0, n, torch.tensor(new float[] { 0, 1, 2, 3 })));
    }
}
