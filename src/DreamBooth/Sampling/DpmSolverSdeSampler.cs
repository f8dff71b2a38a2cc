using TorchSharp;
using static DreamBooth.HeldScalars;
using static TorchSharp.torch;

namespace DreamBooth.Sampling;

/// <summary>
/// DPM-Solver++ SDE (k-diffusion <c>sample_dpmpp_sde</c>, midpoint r = 1/2) as diffusers <c>DPMSolverSDEScheduler</c>:
/// two model evaluations per step (interleaved timesteps: the second of each pair is the midpoint timestep) with
/// ancestral noise at both stages. diffusers draws that noise from a torchsde Brownian tree; here it comes from the
/// <see cref="INoiseSource"/> (one standard-normal draw per stage), so runs are reproducible but a seeded run does
/// not reproduce torchsde's noise bit for bit.
/// </summary>
public sealed class DpmSolverSdeSampler : SamplerBase
{
    internal DpmSolverSdeSampler(SchedulerConfig config, SamplerOptions options) : base(Sampler.DpmPPSdeKarras, config, options)
    {
        if (config.PredictionType == PredictionType.Sample)
            throw new NotSupportedException("DPM++ SDE supports prediction_type epsilon and v_prediction only (as diffusers).");
    }

    public override int Order => 2;

    private protected override SamplingRun CreateRun(int steps)
    {
        var spacing = Spacing(TimestepSpacing.Linspace);
        var train = KSchedule.TrainSigmas(Schedule);
        var (t, sig) = KSchedule.Build(Config, train, steps, spacing, float32Linspace: true, allowKarras: true, honourConfigSigmaRange: false);
        var logS = SigmaSchedules.LogSigmasF32(train);
        // midpoint timesteps: σ at t_mid = t + (t_next − t)/2 with t = −log σ
        var second = new double[sig.Length - 1];
        for (int i = 0; i < second.Length; i++)
        {
            double a = -Math.Log(sig[i]), b = -Math.Log(sig[i + 1]);
            second[i] = SigmaSchedules.SigmaToT(Math.Exp(-(a + (b - a) * 0.5)), logS);
        }
        var s = KSchedule.WithZero(sig);
        var sigmas = new List<double> { s[0] };
        for (int i = 1; i < s.Length - 1; i++) { sigmas.Add(s[i]); sigmas.Add(s[i]); }
        sigmas.Add(s[^1]);
        var ts = new List<double> { SigmaSchedules.F32(t[0]) };
        for (int i = 1; i < t.Length; i++) { ts.Add(SigmaSchedules.F32(second[i - 1])); ts.Add(SigmaSchedules.F32(t[i])); }
        var sa = sigmas.ToArray();
        return new Run(this, steps, ts.ToArray(), sa, SigmaInitNoise(sa, spacing));
    }

    sealed class Run(DpmSolverSdeSampler s, int steps, double[] timesteps, double[] sigmas, double init)
        : SamplingRun(s, steps, timesteps, false, sigmas, init, AddNoiseMode.Sigma)
    {
        Tensor? _sample;
        float? _midSigma;

        bool FirstOrder => _sample is null;

        private protected override Tensor ScaleModelInputCore(Tensor sample, int stepIndex)
        {
            float sigma = FirstOrder || stepIndex != NextStepIndex ? (float)SigmaValues![stepIndex] : _midSigma!.Value;
            return ScaleBySigma(sample, sigma);
        }

        private protected override StepResult StepCore(Tensor modelOutput, int i, Tensor sample, INoiseSource? noise)
        {
            using var scope = torch.NewDisposeScope();
            bool first = FirstOrder;
            float sigma, sigmaNext;
            if (first) { sigma = (float)SigmaValues![i]; sigmaNext = (float)SigmaValues[i + 1]; }
            else { sigma = (float)SigmaValues![i - 1]; sigmaNext = (float)SigmaValues[i]; }
            static float SigmaFn(float t) => MathF.Exp(-t);
            static float TFn(float s) => -MathF.Log(s);
            float t = TFn(sigma), tNext = TFn(sigmaNext);
            float tProposed = t + (tNext - t) * 0.5f;
            float sigmaInput = first ? sigma : SigmaFn(tProposed);
            var x0 = PredictOriginalFromSigma(Sampler.Config.PredictionType, modelOutput, sample, sigmaInput, sigmaInput, "DPM++ SDE");
            Tensor prev;
            if (sigmaNext == 0)
            {
                var derivative = Derivative(sample, x0, sigma);
                prev = EulerStep(sample, derivative, sigmaNext - sigma);
            }
            else
            {
                if (first) tNext = tProposed;
                else sample = _sample!;
                float from = SigmaFn(t), to = SigmaFn(tNext);
                float up = MathF.Min(to, MathF.Pow(to * to * (from * from - to * to) / (from * from), 0.5f));
                float down = MathF.Pow(to * to - up * up, 0.5f);
                float ancestralT = TFn(down);
                float c = SigmaFn(ancestralT) / SigmaFn(t);
                float e = MathF.Exp(t - ancestralT) - 1;
                var z = Draw(noise, modelOutput, "DPM++ SDE");
                prev = Lin(c, sample, -e, x0, (float)Sampler.Options.SNoise * up, z);
                if (first)
                {
                    _sample = Keep(sample);
                    _midSigma = SigmaFn(tNext);
                }
                else
                {
                    Release(_sample);
                    _sample = null;
                    _midSigma = null;
                }
            }
            return new StepResult(prev.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
        }
    }
}
