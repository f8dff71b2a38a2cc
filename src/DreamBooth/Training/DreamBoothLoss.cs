using DreamBooth.Models.Unet;
using DreamBooth.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Training;

/// <summary>The parts of one DreamBooth loss evaluation (tensors live in the caller's dispose scope).</summary>
public sealed record DreamBoothLossResult(Tensor Loss, Tensor InstanceLoss, Tensor? PriorLoss, Tensor NoisyInput, Tensor ModelPred, Tensor Target);

/// <summary>
/// The DreamBooth objective of diffusers' <c>train_dreambooth.py</c>: noise the latents at random timesteps, predict
/// with the UNet, regress on ε or v (from the scheduler config), and — with prior preservation — add
/// <c>prior_loss_weight · mse</c> on the class half of the batch (instance examples first, class examples second).
/// Min-SNR-γ (Hang et al. 2023) reweights each example by min(SNR, γ)/SNR (ε) or min(SNR, γ)/(SNR+1) (v). Optional
/// per-pixel instance weights (masked training) make each instance example's error a weighted mean over its latent.
/// </summary>
public static class DreamBoothLoss
{
    // held for the process (HeldScalars): a temporary Scalar can be freed while libtorch reads it
    static readonly Scalar TinyDenominator = 1e-8.ToScalar();

    public static DreamBoothLossResult Compute(UNet2DConditionModel unet, NoiseSchedule schedule, Tensor latents, Tensor noise,
        Tensor timesteps, Tensor encoderHiddenStates, int instanceCount, double priorLossWeight, double? minSnrGamma = null,
        Tensor? instanceWeights = null)
    {
        long batch = latents.shape[0];
        if (instanceCount < 1 || instanceCount > batch)
            throw new ArgumentOutOfRangeException(nameof(instanceCount), $"instance count {instanceCount} must be in 1…{batch}");
        var prediction = schedule.Config.PredictionType;
        var noisy = schedule.AddNoise(latents, noise, timesteps);
        var pred = unet.Forward(noisy.to(unet.DType), timesteps, encoderHiddenStates.to(unet.DType)).to(ScalarType.Float32);
        var target = prediction switch
        {
            PredictionType.Epsilon => noise,
            PredictionType.VPrediction => schedule.GetVelocity(latents, noise, timesteps),
            PredictionType.Sample => latents,
            _ => throw new NotSupportedException($"prediction type {prediction}"),
        };
        Tensor? weights = minSnrGamma is double g ? schedule.MinSnrWeights(timesteps, g, prediction) : null;

        if (instanceWeights is not null && (instanceWeights.shape[0] != instanceCount || instanceWeights.shape[1] != 1 || instanceWeights.shape[2] != latents.shape[2] || instanceWeights.shape[3] != latents.shape[3]))
            throw new ArgumentException($"instance weights must be [{instanceCount}, 1, {latents.shape[2]}, {latents.shape[3]}], got [{string.Join(", ", instanceWeights.shape)}]", nameof(instanceWeights));

        Tensor Mse(int from, int to, Tensor? pixelWeights)
        {
            var p = pred[from..to];
            var t = target[from..to].to(ScalarType.Float32);
            if (weights is null && pixelWeights is null) return nn.functional.mse_loss(p, t);
            var sq = (p - t).square();
            // a weighted mean per example (weights broadcast over the channels), so masking reshapes the loss, not its scale
            var perExample = pixelWeights is null
                ? sq.flatten(1).mean([1L])
                : (sq * pixelWeights).flatten(1).sum([1L]) / pixelWeights.expand_as(sq).flatten(1).sum([1L]).add(TinyDenominator, HeldScalars.One);
            return weights is null ? perExample.mean() : (perExample * weights[from..to]).mean();
        }

        var instance = Mse(0, instanceCount, instanceWeights?.to(ScalarType.Float32, pred.device));
        Tensor? prior = instanceCount < batch ? Mse(instanceCount, (int)batch, null) : null;
        using var priorWeight = priorLossWeight.ToScalar();
        var loss = prior is null ? instance : instance.Plus(prior.mul(priorWeight));
        return new DreamBoothLossResult(loss, instance, prior, noisy, pred, target);
    }
}
