using TorchSharp;
using static DreamBooth.HeldScalars;
using static TorchSharp.torch;

namespace DreamBooth.Sampling;

/// <summary>What one <see cref="SamplingRun.Step"/> returns: x_{t−1} and, where the sampler computes it, the x₀ estimate.</summary>
public sealed record StepResult(Tensor PrevSample, Tensor? PredOriginalSample);

/// <summary>How a sampler's <c>add_noise</c> mixes signal and noise.</summary>
internal enum AddNoiseMode
{
    /// <summary>√ᾱ_t·x₀ + √(1−ᾱ_t)·ε at the integer timestep (DDPM, DDIM, PNDM).</summary>
    AlphaCumprod,
    /// <summary>x₀ + σ·ε (Euler, Euler a, Heun, LMS, DPM++ SDE: variance-exploding form).</summary>
    Sigma,
    /// <summary>α_σ·x₀ + σ·α_σ·ε with α_σ = 1/√(σ²+1) (DPM-Solver multistep, UniPC).</summary>
    AlphaSigma,
}

/// <summary>
/// The state of one sampling run: the timesteps the UNet gets, the sigmas, and whatever history a multistep
/// method keeps. Created by <see cref="ISampler.Start"/>; the caller loops
/// <c>for (i = BeginIndex; i &lt; Timesteps.Count; i++) { input = ScaleModelInput(x, i); eps = unet(input, Timesteps[i]); x = Step(eps, i, x, noise).PrevSample; }</c>.
/// Steps must be taken in order; a run is used once (start a new one for the next image).
/// </summary>
public abstract class SamplingRun : IDisposable
{
    readonly List<Tensor> _owned = [];

    private protected SamplingRun(SamplerBase sampler, int inferenceSteps, double[] timesteps, bool integerTimesteps,
        double[]? sigmas, double initNoiseSigma, AddNoiseMode addNoiseMode)
    {
        Sampler = sampler;
        InferenceSteps = inferenceSteps;
        TimestepValues = timesteps;
        IntegerTimesteps = integerTimesteps;
        SigmaValues = sigmas;
        InitNoiseSigma = initNoiseSigma;
        NoiseMode = addNoiseMode;
    }

    private protected SamplerBase Sampler { get; }
    private protected double[] TimestepValues { get; }
    private protected double[]? SigmaValues { get; }
    internal AddNoiseMode NoiseMode { get; }

    /// <summary>The sampler that started this run.</summary>
    public ISampler Owner => Sampler;

    /// <summary>Number of inference steps asked for (the Timesteps array can be longer: Heun, DPM++ SDE, PLMS).</summary>
    public int InferenceSteps { get; }

    /// <summary>The timestep value handed to the UNet at each step index (integers for DDPM/DDIM/PNDM/DPM/UniPC).</summary>
    public IReadOnlyList<double> Timesteps => TimestepValues;

    /// <summary>True when diffusers keeps these timesteps as int64; false for float32 (Euler-type) timesteps.</summary>
    public bool IntegerTimesteps { get; }

    /// <summary>The sampler's sigma array (diffusers <c>scheduler.sigmas</c>), or null for DDPM/DDIM/PNDM.</summary>
    public IReadOnlyList<double>? Sigmas => SigmaValues;

    /// <summary>Standard deviation of the starting noise: multiply N(0, I) latents by this (diffusers <c>init_noise_sigma</c>).</summary>
    public double InitNoiseSigma { get; }

    /// <summary>First step index of this run: 0, or where an image-to-image run starts.</summary>
    public int BeginIndex { get; private set; }

    /// <summary>The step index the next <see cref="Step"/> call must use.</summary>
    public int NextStepIndex { get; private set; }

    /// <summary>Whether all steps have been taken.</summary>
    public bool IsComplete => NextStepIndex >= TimestepValues.Length;

    internal void SetBeginIndex(int index)
    {
        if (index < 0 || index > TimestepValues.Length)
            throw new ArgumentOutOfRangeException(nameof(index));
        BeginIndex = index;
        NextStepIndex = index;
    }

    /// <summary>The timestep of <paramref name="stepIndex"/> as a 0-d tensor (int64 or float32, as diffusers passes it to the UNet).</summary>
    public Tensor TimestepTensor(int stepIndex, Device? device = null)
    {
        CheckIndex(stepIndex);
        var v = TimestepValues[stepIndex];
        return IntegerTimesteps
            ? torch.tensor((long)v, dtype: ScalarType.Int64, device: device)
            : torch.tensor((float)v, dtype: ScalarType.Float32, device: device);
    }

    /// <summary>Scales the denoiser input at <paramref name="stepIndex"/> (1/√(σ²+1) for the σ-parameterised samplers, identity otherwise).</summary>
    public Tensor ScaleModelInput(Tensor sample, int stepIndex)
    {
        ArgumentNullException.ThrowIfNull(sample);
        CheckIndex(stepIndex);
        return ScaleModelInputCore(sample, stepIndex);
    }

    /// <summary>
    /// One denoising step from <paramref name="sample"/> at <paramref name="stepIndex"/> given the model output there.
    /// <paramref name="noise"/> supplies fresh Gaussian noise to stochastic samplers (Euler a, DDPM, DDIM with η &gt; 0,
    /// DPM++ SDE); deterministic samplers ignore it. Steps must be taken in order starting at <see cref="BeginIndex"/>.
    /// </summary>
    public StepResult Step(Tensor modelOutput, int stepIndex, Tensor sample, INoiseSource? noise = null)
    {
        ArgumentNullException.ThrowIfNull(modelOutput);
        ArgumentNullException.ThrowIfNull(sample);
        CheckIndex(stepIndex);
        if (stepIndex != NextStepIndex)
            throw new InvalidOperationException(
                $"step {stepIndex} called but this run expects step {NextStepIndex}: steps must be taken in order (start a new run with ISampler.Start for a new image).");
        if (modelOutput.dim() < 1 || modelOutput.shape[0] != sample.shape[0])
            throw new ArgumentException($"model output shape [{string.Join(",", modelOutput.shape)}] does not match sample shape [{string.Join(",", sample.shape)}].");
        var result = StepCore(modelOutput, stepIndex, sample, noise);
        NextStepIndex++;
        return result;
    }

    /// <summary>
    /// Noises clean latents to the level of <paramref name="stepIndex"/> (image-to-image start, diffusers <c>add_noise</c>
    /// with the run's begin index).
    /// </summary>
    /// <summary>
    /// diffusers' multistep <c>index_for_timestep</c>: the second match when a timestep repeats, the last index when it is
    /// not in the schedule (image-to-image starts).
    /// </summary>
    private protected int MultistepIndexForTimestep(double t)
    {
        var m = Enumerable.Range(0, TimestepValues.Length).Where(i => TimestepValues[i] == t).ToArray();
        return m.Length == 0 ? TimestepValues.Length - 1 : m.Length > 1 ? m[1] : m[0];
    }

    /// <summary>α_t = 1/√(σ²+1), σ_t = σ·α_t and λ = log α − log σ in float32, as the multistep solvers compute them.</summary>
    private protected static (float Alpha, float Sigma, float Lambda) AlphaSigmaF32(double sigma)
    {
        float sg = (float)sigma;
        float a = 1 / MathF.Pow(sg * sg + 1, 0.5f);
        float st = sg * a;
        return (a, st, MathF.Log(a) - MathF.Log(st));
    }

    /// <summary>
    /// The multistep solvers' model-output conversion (diffusers' <c>convert_model_output</c>): to the data prediction x₀
    /// (<paramref name="toDataPrediction"/>, DPM-Solver++ / UniPC with predict_x0) or to the noise prediction ε, from an
    /// ε, x₀ or v model output at noise level (α, σ).
    /// </summary>
    private protected static Tensor ConvertModelOutput(Tensor modelOutput, Tensor sample, double alpha, double sigma, PredictionType p, bool toDataPrediction)
    {
        if (toDataPrediction)
            return p switch
            {
                PredictionType.Epsilon => (sample - modelOutput.Times(sigma)).Over(alpha),
                PredictionType.Sample => modelOutput.alias(),
                PredictionType.VPrediction => Lin(alpha, sample, -sigma, modelOutput),
                _ => throw new NotSupportedException(p.ToString()),
            };
        return p switch
        {
            PredictionType.Epsilon => modelOutput.alias(),
            PredictionType.Sample => (sample - modelOutput.Times(alpha)).Over(sigma),
            PredictionType.VPrediction => Lin(alpha, modelOutput, sigma, sample),
            _ => throw new NotSupportedException(p.ToString()),
        };
    }

    public Tensor AddNoise(Tensor original, Tensor noise, int stepIndex)
    {
        CheckIndex(stepIndex);
        var idx = Enumerable.Repeat(stepIndex, (int)original.shape[0]).ToArray();
        return AddNoiseByIndex(original, noise, idx);
    }

    /// <summary>
    /// diffusers <c>add_noise(original, noise, timesteps)</c> on a freshly set-up scheduler: one timestep value per
    /// batch element, looked up in <see cref="Timesteps"/> (σ-based samplers) or used directly (ᾱ-based samplers).
    /// </summary>
    public Tensor AddNoiseAtTimesteps(Tensor original, Tensor noise, IReadOnlyList<double> timesteps)
    {
        ArgumentNullException.ThrowIfNull(timesteps);
        if (timesteps.Count != original.shape[0])
            throw new ArgumentException($"one timestep per batch element expected: {timesteps.Count} for a batch of {original.shape[0]}.");
        if (NoiseMode == AddNoiseMode.AlphaCumprod)
        {
            using var scope = torch.NewDisposeScope();
            var t = torch.tensor(timesteps.Select(v => (long)v).ToArray(), dtype: ScalarType.Int64);
            return Sampler.Schedule.AddNoise(original, noise, t).MoveToOuterDisposeScope();
        }
        var idx = timesteps.Select(IndexForTimestep).ToArray();
        return AddNoiseByIndex(original, noise, idx);
    }

    /// <summary>diffusers <c>index_for_timestep</c>: the second match when the value repeats, so img2img skips no sigma.</summary>
    private protected virtual int IndexForTimestep(double t)
    {
        var matches = Enumerable.Range(0, TimestepValues.Length).Where(i => TimestepValues[i] == t).ToArray();
        if (matches.Length == 0)
            throw new ArgumentException($"timestep {t} is not one of this run's timesteps.");
        return matches.Length > 1 ? matches[1] : matches[0];
    }

    Tensor AddNoiseByIndex(Tensor original, Tensor noise, int[] stepIndices)
    {
        ArgumentNullException.ThrowIfNull(original);
        ArgumentNullException.ThrowIfNull(noise);
        if (!original.shape.SequenceEqual(noise.shape))
            throw new ArgumentException($"noise shape [{string.Join(",", noise.shape)}] differs from the latents' [{string.Join(",", original.shape)}].");
        using var scope = torch.NewDisposeScope();
        var shape = new long[original.dim()];
        Array.Fill(shape, 1L);
        shape[0] = -1;
        switch (NoiseMode)
        {
            case AddNoiseMode.AlphaCumprod:
            {
                var t = torch.tensor(stepIndices.Select(i => (long)TimestepValues[i]).ToArray(), dtype: ScalarType.Int64);
                return Sampler.Schedule.AddNoise(original, noise, t).MoveToOuterDisposeScope();
            }
            case AddNoiseMode.Sigma:
            {
                var sigma = torch.tensor(stepIndices.Select(i => (float)SigmaValues![i]).ToArray(), dtype: ScalarType.Float32)
                    .to(original.dtype, original.device).reshape(shape);
                return original.Plus(noise * sigma).MoveToOuterDisposeScope();
            }
            default:
            {
                var sigma = torch.tensor(stepIndices.Select(i => (float)SigmaValues![i]).ToArray(), dtype: ScalarType.Float32)
                    .to(original.dtype, original.device).reshape(shape);
                var alphaT = sigma.Power(2).Shift(1).Power(0.5).reciprocal();
                var sigmaT = sigma * alphaT;
                return (alphaT * original).Plus(sigmaT * noise).MoveToOuterDisposeScope();
            }
        }
    }

    private protected virtual Tensor ScaleModelInputCore(Tensor sample, int stepIndex) => sample.alias();

    private protected abstract StepResult StepCore(Tensor modelOutput, int stepIndex, Tensor sample, INoiseSource? noise);

    /// <summary>Keeps <paramref name="t"/> alive across steps (owned by the run, freed on <see cref="Dispose"/>).</summary>
    private protected Tensor Keep(Tensor t)
    {
        var kept = t.alias().DetachFromDisposeScope();
        _owned.Add(kept);
        return kept;
    }

    /// <summary>Releases a tensor kept with <see cref="Keep"/>.</summary>
    private protected void Release(Tensor? t)
    {
        if (t is null) return;
        if (_owned.Remove(t)) t.Dispose();
    }

    private protected static Tensor Draw(INoiseSource? noise, Tensor like, string who)
    {
        if (noise is null)
            throw new ArgumentNullException(nameof(noise), $"{who} draws fresh noise at this step: pass an INoiseSource (e.g. new GeneratorNoiseSource(seed)).");
        var n = noise.Next(like.shape, like.dtype, like.device);
        if (!n.shape.SequenceEqual(like.shape))
            throw new InvalidOperationException($"the noise source returned shape [{string.Join(",", n.shape)}] for a sample of shape [{string.Join(",", like.shape)}].");
        return n;
    }

    private protected void CheckIndex(int stepIndex)
    {
        if (stepIndex < 0 || stepIndex >= TimestepValues.Length)
            throw new ArgumentOutOfRangeException(nameof(stepIndex), stepIndex, $"this run has step indices 0..{TimestepValues.Length - 1}.");
    }

    /// <summary>The σ-samplers' model input: x / √(σ² + 1) in float32 (diffusers' <c>scale_model_input</c>).</summary>
    private protected static Tensor ScaleBySigma(Tensor sample, float sigma) => sample.Over(MathF.Pow(sigma * sigma + 1, 0.5f));

    /// <summary>The ODE derivative d = (x − x₀) / σ.</summary>
    private protected static Tensor Derivative(Tensor sample, Tensor x0, float sigma)
    {
        using var diff = sample - x0;
        return diff.Over(sigma);
    }

    /// <summary>An Euler step x + d·Δt.</summary>
    private protected static Tensor EulerStep(Tensor sample, Tensor derivative, float dt)
    {
        using var delta = derivative.Times(dt);
        return sample.Plus(delta);
    }

    /// <summary>x₀ estimate from the model output (σ-parameterisation: ε, v or x₀ prediction).</summary>
    private protected static Tensor PredictOriginalFromSigma(PredictionType p, Tensor modelOutput, Tensor sample, double sigmaForEps, double sigmaForV, string who)
    {
        switch (p)
        {
            case PredictionType.Epsilon:
                return sample - modelOutput.Times((float)sigmaForEps);
            case PredictionType.VPrediction:
            {
                float s = (float)sigmaForV;
                float c = -s / MathF.Pow(s * s + 1, 0.5f);
                float d = s * s + 1;
                using var scaled = sample.Over(d);
                return modelOutput.Times(c).Plus(scaled);
            }
            case PredictionType.Sample:
                return modelOutput.alias();
            default:
                throw new NotSupportedException($"{who}: prediction_type {p} is not supported.");
        }
    }

    public void Dispose()
    {
        foreach (var t in _owned) t.Dispose();
        _owned.Clear();
        GC.SuppressFinalize(this);
    }
}

/// <summary>Shared plumbing of the samplers: the schedule, options, and img2img start.</summary>
public abstract class SamplerBase : ISampler
{
    private protected SamplerBase(Sampler kind, SchedulerConfig config, SamplerOptions options)
    {
        Kind = kind;
        Config = config;
        Options = options;
        Schedule = new NoiseSchedule(config);
        if (config.Thresholding)
            throw new NotSupportedException("scheduler_config.json sets thresholding true (dynamic thresholding); it is not supported here — set it to false (Stable Diffusion does).");
    }

    public Sampler Kind { get; }
    public SchedulerConfig Config { get; }
    public SamplerOptions Options { get; }
    public NoiseSchedule Schedule { get; }
    public virtual int Order => 1;

    public SamplingRun Start(int steps)
    {
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "the number of steps must be at least 1.");
        return CreateRun(steps);
    }

    public SamplingRun StartImageToImage(int steps, double strength)
    {
        if (!(strength >= 0 && strength <= 1))
            throw new ArgumentOutOfRangeException(nameof(strength), strength, "strength must lie in [0, 1] (1 = ignore the input image).");
        var run = Start(steps);
        int initTimestep = Math.Min((int)(steps * strength), steps);
        int tStart = Math.Max(steps - initTimestep, 0);
        run.SetBeginIndex(Math.Min(tStart * Order, run.Timesteps.Count));
        return run;
    }

    private protected abstract SamplingRun CreateRun(int steps);

    /// <summary>The config's spacing or this class's diffusers default.</summary>
    private protected TimestepSpacing Spacing(TimestepSpacing classDefault) => Config.SpacingOr(classDefault);

    /// <summary>diffusers <c>init_noise_sigma</c> of the σ samplers: max σ for linspace/trailing, √(max σ² + 1) for leading.</summary>
    private protected static double SigmaInitNoise(double[] sigmas, TimestepSpacing spacing)
    {
        float max = (float)sigmas.Max();
        return spacing is TimestepSpacing.Linspace or TimestepSpacing.Trailing ? max : MathF.Pow(max * max + 1, 0.5f);
    }

    public void Dispose()
    {
        Schedule.Dispose();
        GC.SuppressFinalize(this);
    }
}
