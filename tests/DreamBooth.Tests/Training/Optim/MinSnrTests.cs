using DreamBooth.Sampling;
using DreamBooth.Training.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Tests.Training.Optim;

public class MinSnrTests
{
    [Fact]
    public void WeightsFollowDiffusersFormulas()
    {
        using var scope = torch.NewDisposeScope();
        var snr = torch.tensor(new[] { 0.5f, 5f, 20f, 0f });
        var eps = NoiseSchedule.MinSnrWeightsFromSnr(snr, 5.0, PredictionType.Epsilon).data<float>().ToArray();
        Assert.Equal(new[] { 1f, 1f, 0.25f, 1f }, eps);
        var v = NoiseSchedule.MinSnrWeightsFromSnr(snr, 5.0, PredictionType.VPrediction).data<float>().ToArray();
        Assert.Equal(0.5 / 1.5, v[0], 6);
        Assert.Equal(5.0 / 6, v[1], 6);
        Assert.Equal(5.0 / 21, v[2], 6);
        Assert.Equal(0.0, v[3], 6);
        Assert.Throws<ArgumentOutOfRangeException>(() => NoiseSchedule.MinSnrWeightsFromSnr(snr, 0, PredictionType.Epsilon));
    }

    [Fact]
    public void SnrFromAlphasCumprod()
    {
        using var scope = torch.NewDisposeScope();
        using var schedule = new NoiseSchedule(SchedulerConfig.StableDiffusion);
        var t = new long[] { 2, 0, 999 };
        var snr = schedule.Snr(torch.tensor(t)).data<float>().ToArray();
        for (int i = 0; i < t.Length; i++)
        {
            double a = schedule.AlphasCumprodValues[(int)t[i]];
            Assert.InRange(snr[i] / (a / (1 - a)), 0.9999, 1.0001);
        }
    }

    [Fact]
    public void OffsetNoiseAddsPerChannelConstant()
    {
        using var scope = torch.NewDisposeScope();
        var noise = torch.randn(new long[] { 2, 4, 8, 8 }, generator: new Generator(1));
        var a = OffsetNoise.Apply(noise, 0.1, new Generator(7));
        var b = OffsetNoise.Apply(noise, 0.1, new Generator(7));
        Assert.True(a.Same(b));
        var d = a - noise;
        var perChannel = d.amax(new long[] { 2, 3 }) - d.amin(new long[] { 2, 3 });
        Assert.True(perChannel.max().item<float>() < 1e-6f);
        var expected = torch.randn(new long[] { 2, 4, 1, 1 }, generator: new Generator(7)) * 0.1;
        Assert.True((d[.., .., 0, 0] - expected.reshape(2, 4)).abs().max().item<float>() < 1e-6f);
        Assert.True(OffsetNoise.Apply(noise, 0.0).Same(noise));
        Assert.Throws<ArgumentException>(() => OffsetNoise.Apply(torch.zeros(3), 0.1));
    }
}
