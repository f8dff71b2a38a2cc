using DreamBooth.Loading;
using DreamBooth.Tests.Infrastructure;
using TorchSharp;

namespace DreamBooth.Tests.Models;

/// <summary>
/// Parameter gradients produced through gradient checkpointing must survive the dispose scope of the step that ran
/// backward (the optimizer reads them after it): nothing the scope frees may be what .grad points to.
/// </summary>
[Collection(DreamBooth.Tests.Infrastructure.CustomAutogradCollection.Name)]
public class CheckpointGradLifetimeTests
{
    [Fact]
    public void GradientsSurviveTheStepScope()
    {
        using var unet = ComponentLoader.LoadUnet(TestPaths.ParityPath("unet-sd1-tiny"));
        unet.train();
        var g = new torch.Generator().manual_seed(3);
        var x = torch.randn([2, 4, 16, 16], generator: g);
        var c = torch.randn([2, 77, 32], generator: g);
        var t = torch.tensor(new long[] { 10, 900 });

        unet.GradientCheckpointing = false;
        unet.Forward(x, t, c).pow(2).mean().backward();
        var reference = unet.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        foreach (var p in unet.parameters()) p.grad = null;

        unet.GradientCheckpointing = true;
        using (torch.NewDisposeScope())
        {
            unet.Forward(x, t, c).pow(2).mean().backward();
        }
        // reuse freed memory: if a gradient buffer had been released with the scope, this overwrites it
        var junk = Enumerable.Range(0, 200).Select(_ => torch.full(4096, 12345f)).ToList();
        foreach (var (name, p) in unet.named_parameters())
            Assert.True(torch.allclose(p.grad!, reference[name], 1e-6, 1e-7), $"{name}: gradient changed after the step scope ended");
        foreach (var j in junk) j.Dispose();
    }
}
